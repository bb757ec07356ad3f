"""The GPU run on a lent machine (experiments/gpu.sh, docs/scaling.md#a-lent-gpu-machine): what travels with it
and what it does there.

Modules: facepack (FER2013 as one file and back, checked against the suite's own decoding), requirements
(the bundle's wheels against what is installed or what the image has), transfer (the device tool's limits:
the working tree's size, the files that come back from $OUT), bundle (`make gpu-bundle`), plan (how many
epochs fit, from a timed first epoch), bench (the training step's rate against the GPU's bf16 matmul).
"""
