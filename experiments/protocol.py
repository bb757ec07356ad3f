"""`python -m experiments.protocol <data>`: the evaluation protocol of a data config as the Makefile needs
it, read from conf/data/ (the one place it is stated): `kfold <num_folds>`, `fixed` or `auto`."""

from __future__ import annotations

import sys

from hydra import compose, initialize_config_dir

from fer_attention.config import config_dir


def protocol(data: str) -> str:
    """``kfold N``, ``fixed`` or ``auto`` for the data config ``data``."""
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose(config_name="train", overrides=[f"data={data}"])
    kind = str(cfg.data.get("protocol", "fixed"))
    return f"kfold {int(cfg.data.num_folds)}" if kind == "kfold" else kind


if __name__ == "__main__":
    print(protocol(sys.argv[1]))
