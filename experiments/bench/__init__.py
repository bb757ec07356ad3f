"""Benchmark suite (`make bench`, `python -m experiments.bench`): LBP layer vs scikit-image, training step
per ablation (every conf/ablation option) vs vgg16, the fast paths (channels_last, bf16 autocast,
torch.compile, malloc thresholds) on the full model and vgg16, the attainable rate (bf16 and fp32
torch.matmul) and each training step's FLOP (FlopCounterMode) and share of it, data loader
(conf/augment/default.yaml) vs training throughput (and persistent loader workers on vs off), eager vs
exported inference (TorchScript, ONNX Runtime), int8 ONNX Runtime (static QDQ) vs fp32 eager, video end
to end (decode, detection, prediction) on a 640x480 clip generated here, peak memory. Every figure is the
median of torch.utils.benchmark's timed runs after its warm-up (adaptive: until their IQR is under 10% of
the median or --max-run-time is spent), with IQR, min and max; ratios compare figures from this one run.

Writes logs/bench/bench.json and logs/bench/bench.md and prints the table. ``--quick`` runs every section
at toy sizes in well under a minute, to check the script (its figures mean nothing).

Modules: config (what is read from conf/), measure, measure_data and measure_inference (the timing),
decide (ratios, targets, which fast path becomes the default; numbers only), render (bench.md and
bench.json), cli.
"""
