"""Mutants that the tests must kill: each applies one wrong line to a copy of the package and runs the test
written to catch it. `python -m tests.mutants [NAME ...]` from the repository root (needs `make install`);
every line should end in "killed". Not part of `make test`: each mutant is a pytest run of its own."""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

SRC = Path(__file__).resolve().parents[1]
DST = Path(tempfile.gettempdir()) / "fer_attention_mutant"
MUTANTS = [
    (
        "best->last",
        "fer_attention/training/task.py",
        "model, datamodule=datamodule, ckpt_path=best_ckpt,",
        "model, datamodule=datamodule, ckpt_path=last_ckpt,",
        "tests/test_train.py::test_the_test_split_is_read_with_the_best_on_validation_checkpoint_not_the_last",
    ),
    (
        "fixed split corrected",
        "fer_attention/reporting/aggregate.py",
        "if kfold and ratios else 0.0",
        "if ratios else 0.0",
        "tests/test_report.py::test_seeds_on_one_fixed_split_are_the_plain_paired_t_test_even_with_split_sizes",
    ),
    (
        "attention args swapped",
        "fer_attention/models/fer_attention_net.py",
        "self.attention(feat, guide)",
        "self.attention(guide, feat)",
        "tests/test_network.py::test_the_lbp_stream_sees_the_lbp_map_and_the_attention_mask_is_guided_by_the_fused_features",
    ),
    (
        "lbp stream on image",
        "fer_attention/models/fer_attention_net.py",
        "return feat, stream(lbp_map)",
        "return feat, stream(image)",
        "tests/test_network.py::test_the_lbp_stream_sees_the_lbp_map_and_the_attention_mask_is_guided_by_the_fused_features",
    ),
    (
        "dilation ignored",
        "fer_attention/models/reconstruction.py",
        "conv_bn_relu(inner, inner, 3, dilation=r)",
        "conv_bn_relu(inner, inner, 3, dilation=1)",
        "tests/test_network.py::test_each_dilation_set_is_built_into_the_reconstruction_convolutions",
    ),
    (
        "reconstruction shortcut",
        "fer_attention/models/reconstruction.py",
        "return self.act(x + self.body(x))",
        "return self.act(self.body(x))",
        "tests/test_network.py::test_reconstruction_and_bottleneck_add_their_input_back",
    ),
    (
        "bottleneck shortcut",
        "fer_attention/models/layers.py",
        "return self.act(x + self.body(x))",
        "return self.act(self.body(x))",
        "tests/test_network.py::test_reconstruction_and_bottleneck_add_their_input_back",
    ),
    (
        "holm cell",
        "fer_attention/reporting/tables.py",
        "format_p(c.p_holm),",
        "format_p(c.p_corrected),",
        "tests/test_report.py::test_table_md_shows_each_rows_own_difference_interval_and_p_values",
    ),
    (
        "unstratified",
        "fer_attention/data/splits.py",
        "rest, test = list(outer.split(np.zeros(len(labels)), labels, subjects))[fold]",
        "rest, test = list(outer.split(np.zeros(len(labels)), np.zeros_like(labels), subjects))[fold]",
        "tests/test_data_module.py::test_subject_folds_hold_a_fold_of_subjects_each_stratified_and_independent_of_global_rng",
    ),
    (
        "train/val swapped",
        "fer_attention/data/splits.py",
        "tr, va = next(",
        "va, tr = next(",
        "tests/test_data_module.py::test_subject_folds_hold_a_fold_of_subjects_each_stratified_and_independent_of_global_rng",
    ),
    (
        "interval not /sqrt(n)",
        "fer_attention/reporting/stats.py",
        "    half /= math.sqrt(len(values))\n",
        "",
        "tests/test_report.py::test_mean_interval_is_the_t_interval_of_the_mean_in_points",
    ),
    (
        "pretrained twin ignored",
        "experiments/pretrained.py",
        "if kept.is_file() and yaml.safe_load(kept.read_text()) == config:",
        "if kept.is_file() and yaml.safe_load(kept.read_text()) is config:",
        "tests/test_pretrained_regime.py::test_the_papers_choice_is_pretrained_once_and_shared_by_every_table",
    ),
    (
        "ten-crop faces mixed",
        "fer_attention/models/tta.py",
        "return net(crops).view(10, x.shape[0], -1).mean(dim=0)",
        "return net(crops).view(x.shape[0], 10, -1).mean(dim=1)",
        "tests/test_train.py::test_ten_crop_of_a_batch_gives_each_face_its_own_ten_crops",
    ),
    (
        "lbp threshold strict",
        "fer_attention/lbp.py",
        "code.add_((t.sub_(centre) if owned else t - centre).ge_(0), alpha=2**i)",
        "code.add_((t.sub_(centre) if owned else t - centre).gt_(0), alpha=2**i)",
        "tests/test_lbp.py::test_matches_skimage_exactly_in_float64",
    ),
    (
        "uncorrected variance",
        "fer_attention/reporting/stats.py",
        "se = math.sqrt((1.0 / n + test_train_ratio) * sd**2)",
        "se = math.sqrt((1.0 / n) * sd**2)",
        "tests/test_report.py::test_corrected_repeated_kfold_t_matches_a_hand_computed_example",
    ),
    (
        "holm not step-down",
        "fer_attention/reporting/stats.py",
        "running = max(running, min(1.0, (m - rank) * p))",
        "running = min(1.0, (m - rank) * p)",
        "tests/test_report.py::test_holm_adjusts_step_down_and_keeps_missing_values_out_of_the_family",
    ),
    (
        "validation not by subject",
        "fer_attention/data/splits.py",
        "tr, va = next(inner.split(np.zeros(len(rest)), labels[rest], subjects[rest]))",
        "tr, va = next(inner.split(np.zeros(len(rest)), labels[rest], np.arange(len(rest))))",
        "tests/test_data_module.py::test_subject_folds_hold_a_fold_of_subjects_each_stratified_and_independent_of_global_rng",
    ),
    (
        "fer2013 PublicTest as test",
        "fer_attention/data/sources/fer2013.py",
        'USAGE_SPLIT = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}',
        'USAGE_SPLIT = {"Training": "train", "PublicTest": "test", "PrivateTest": "val"}',
        "tests/test_data_sources.py::test_fer2013_csv_labels_splits_and_pixels",
    ),
    (
        "ck+ subject per sequence",
        "fer_attention/data/sources/ckplus.py",
        "subject, seq, frame = m.group(1).upper(), m.group(2), int(m.group(3))",
        "subject, seq, frame = m.group(1).upper() + m.group(2), m.group(2), int(m.group(3))",
        "tests/test_data_sources.py::test_ck48_layout",
    ),
    (
        "augment on eval",
        "fer_attention/data/datamodule.py",
        'faces.images[idx], faces.labels[idx], train_tf if split == "train" else None',
        "faces.images[idx], faces.labels[idx], train_tf",
        "tests/test_data_augment.py::test_only_the_training_split_is_augmented",
    ),
    (
        "checkpoint kept on lowest val",
        "conf/callbacks/model_checkpoint.yaml",
        "  mode: max",
        "  mode: min",
        "tests/test_train.py::test_the_checkpoint_kept_is_the_first_epoch_of_highest_validation_accuracy",
    ),
    (
        "f1 micro",
        "fer_attention/training/module.py",
        '"f1_macro": MulticlassF1Score(num_classes, average="macro"),',
        '"f1_macro": MulticlassF1Score(num_classes, average="micro"),',
        "tests/test_train.py::test_metrics_json_contents_and_best_checkpoint",
    ),
    (
        "seed ignored",
        "fer_attention/training/task.py",
        "    pl.seed_everything(int(cfg.seed), workers=True)\n    datamodule = build_datamodule(cfg.data)",
        "    pl.seed_everything(0, workers=True)\n    datamodule = build_datamodule(cfg.data)",
        "tests/test_train.py::test_the_seed_decides_the_initial_weights_and_repeats_them",
    ),
    (
        "seeds filter inverted",
        "fer_attention/reporting/aggregate.py",
        "return [j for j in jobs if j.pair_key[1] in seeds]",
        "return [j for j in jobs if j.pair_key[1] not in seeds]",
        "tests/test_report.py::test_seeds_pool_into_a_repeated_kfold_table_with_holm_and_labelled_wilcoxon",
    ),
    (
        "along reference ignored",
        "fer_attention/reporting/along.py",
        "ref = pick_reference(groups, reference)",
        "ref = pick_reference(groups, None)",
        "tests/test_report_along.py::test_each_width_is_paired_within_itself_and_read_from_the_config",
    ),
    (
        "backbone lr scale ignored",
        "fer_attention/training/optim.py",
        'optimizer = factory(params=[{"params": p, "lr": base_lr * s} for p, s in groups])',
        'optimizer = factory(params=[{"params": p, "lr": base_lr} for p, s in groups])',
        "tests/test_transfer.py::test_without_a_schedule_each_group_trains_at_its_own_scale_of_the_lr",
    ),
    (
        "tta choice inverted",
        "experiments/tta_choice.py",
        'result["chosen"] = "tencrop" if result["acc"]["val_tencrop"] > result["acc"]["val_null"] else "null"',
        'result["chosen"] = "tencrop" if result["acc"]["val_tencrop"] < result["acc"]["val_null"] else "null"',
        "tests/test_tta_choice.py::test_the_mode_is_chosen_on_validation_and_the_test_figures_only_reported",
    ),
    (
        "faces left out of the variance",
        "fer_attention/reporting/decision.py",
        "total = max((ms_seed + ms_face - ms_err) / (r * n), ms_err / (r * n))",
        "total = max(ms_seed / (r * n), 0.0)",
        "tests/test_decision.py::test_seeds_and_faces_variance_matches_the_spread_over_fresh_faces_and_seeds",
    ),
    (
        "no floor under the seeds x faces variance",
        "fer_attention/reporting/decision.py",
        "total = max((ms_seed + ms_face - ms_err) / (r * n), ms_err / (r * n))",
        "total = max((ms_seed + ms_face - ms_err) / (r * n), 0.0)",
        "tests/test_decision.py::test_two_seeds_with_the_same_mean_difference_keep_the_interactions_variance",
    ),
    (
        "posterior without the k-fold correction",
        "fer_attention/reporting/decision.py",
        "        test_train_ratio * var,",
        "        0 * test_train_ratio * var,",
        "tests/test_decision.py::test_kfold_posterior_is_the_corrected_t_and_tost_matches_two_one_sided_tests",
    ),
    (
        "faces paired unchecked",
        "fer_attention/reporting/decision.py",
        'if a["ids"].shape != b["ids"].shape or not (a["ids"] == b["ids"]).all():',
        "if False:",
        "tests/test_decision.py::test_paired_jobs_of_different_faces_are_an_error_naming_both",
    ),
    (
        "votes ignored in the loss",
        "fer_attention/training/module.py",
        "loss = self.criterion(logits.float(), soft[0].float()) if soft else self.criterion(logits, y)",
        "loss = self.criterion(logits, y)",
        "tests/test_ferplus.py::test_a_training_step_on_votes_is_cross_entropy_against_the_vote_distribution",
    ),
    (
        "fusion a free string",
        "fer_attention/models/options.py",
        "    fusion: Fusion\n",
        "    fusion: str\n",
        "tests/test_config_errors.py::test_an_unknown_key_or_a_wrong_type_fails_at_composition_in_one_line",
    ),
    (
        "trainer epochs untyped",
        "fer_attention/config.py",
        "    max_epochs: int | None = None",
        "    max_epochs: Any = None",
        "tests/test_schema_fuzz.py::test_a_bad_value_is_one_line_naming_the_key_before_any_data",
    ),
    (
        "composition errors over several lines",
        "fer_attention/cli/common.py",
        '        os.environ[FULL_ERROR] = "1"',
        "        pass",
        "tests/test_config_errors.py::test_an_unknown_key_or_a_wrong_type_fails_at_composition_in_one_line",
    ),
    (
        "added keys unchecked",
        "fer_attention/cli/common.py",
        "        check_schema_keys(cfg)",
        "        pass",
        "tests/test_config_errors.py::test_a_key_added_past_a_schema_stops_the_command_before_its_task",
    ),
    (
        "recorded data config unchecked",
        "fer_attention/data/options.py",
        '    check_fields(DataOptions, values, "data")',
        "    pass",
        "tests/test_data_configs.py::test_a_bad_recorded_data_value_is_one_line_naming_the_key",
    ),
    (
        "enum members in checkpoints",
        "fer_attention/training/builders.py",
        "        return OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)",
        "        return OmegaConf.to_container(cfg, resolve=True)",
        "tests/test_data_configs.py::test_the_data_schema_is_the_datamodules_one_parameter_list",
    ),
    (
        "instantiate's wrapped error",
        "fer_attention/training/builders.py",
        "        raise err.__cause__ from None",
        "        raise",
        "tests/test_data_configs.py::test_a_bad_recorded_data_value_is_one_line_naming_the_key",
    ),
    (
        "malloc threshold 0 accepted",
        "fer_attention/runtime.py",
        "not 0 < value <= _MAX_MB",
        "not 0 <= value <= _MAX_MB",
        "tests/test_config_errors.py::test_bad_config_value_names_key_value_and_allowed",
    ),
    (
        "two single runs one command",
        "fer_attention/reporting/results.py",
        "if len(single) != 1 or not single[0].is_file():",
        "if not single or not single[0].is_file():",
        "tests/test_report.py::test_a_published_single_run_names_its_fer_train_command_and_start",
    ),
]


def _copy(mutant: tuple[str, str, str, str, str] | None) -> None:
    """A fresh copy of the repository in DST, with one mutant's wrong line applied (none: unmutated)."""
    if DST.exists():
        shutil.rmtree(DST)
    shutil.copytree(
        SRC,
        DST,
        ignore=shutil.ignore_patterns("logs", ".venv", ".git", "results", "__pycache__", "*.egg-info"),
    )
    if mutant is not None:
        name, path, old, new, _ = mutant
        f = DST / path
        s = f.read_text()
        assert s.count(old) == 1, (name, s.count(old))
        f.write_text(s.replace(old, new))


def _pytest(tests: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(DST), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [str(SRC / ".venv/bin/pytest"), "-q", "-x", "-p", "no:randomly", "-p", "no:cacheprovider", *tests],
        cwd=DST,
        env=env,
        capture_output=True,
        text=True,
    )


def main(only: list[str]) -> int:
    """Run the mutants named in ``only`` (all when empty), printing killed or SURVIVED for each; 1 when the
    unmutated copy fails the tests or any mutant survives."""
    chosen = [m for m in MUTANTS if not only or m[0] in only]
    unknown = sorted(set(only) - {m[0] for m in MUTANTS})
    if unknown:
        print(f"error: no mutant named {', '.join(unknown)}; mutants: {', '.join(m[0] for m in MUTANTS)}")
        return 2
    _copy(None)
    base = _pytest(sorted({m[4] for m in chosen}))
    if base.returncode:
        print("baseline: the unmutated copy FAILS these tests, so no mutant can be judged")
        print(base.stdout[-1000:])
        return 1
    print("baseline: the unmutated copy passes", flush=True)
    survived = 0
    for mutant in chosen:
        _copy(mutant)
        r = _pytest([mutant[4]])
        survived += not r.returncode
        print(
            f"{mutant[0]}: {'killed' if r.returncode else 'SURVIVED: the test passed on wrong code'}",
            flush=True,
        )
        if not r.returncode:
            print(r.stdout[-500:])
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
