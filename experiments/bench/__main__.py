"""`python -m experiments.bench [--quick] [--width W] ...`: see experiments/bench/cli.py."""

from experiments.bench.cli import main

if __name__ == "__main__":
    main()
