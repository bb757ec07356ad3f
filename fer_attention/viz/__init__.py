"""Drawing, below training, inference and fer-report: figures, confusion matrices, faces annotated on a
photo, attention maps and a video's timeline."""
