"""The figures the README and docs cite from experiments/results/ are those folders' figures."""

from __future__ import annotations

from experiments import check_results


def test_every_cited_figure_is_its_folders_figure(capsys):
    assert check_results.main([]) == 0, capsys.readouterr().out
    out = capsys.readouterr().out
    checked = int(out.split()[0])
    assert checked >= 50, out


def test_a_table_figure_or_a_prose_figure_that_differs_from_its_folder_fails(tmp_path, capsys):
    readme = (check_results.ROOT / "README.md").read_text()
    row = next(ln for ln in readme.splitlines() if ln.startswith("| no_lbp |"))
    mean = row.split("|")[2].strip()
    changed = tmp_path / "README.md"
    changed.write_text(readme.replace(row, row.replace(mean, "99.99 ± 0.01"), 1))
    assert check_results.main([str(changed)]) == 1
    out = capsys.readouterr().out
    assert "'99.99 ± 0.01' is not in ablation_modules_ckplus48_cpu (no_lbp: test acc (%)" in out

    prose = tmp_path / "prose.md"
    prose.write_text(
        "The long run ([folder](experiments/results/fer2013_full_long_cpu/README.md)) reaches 12.34% "
        "on PrivateTest.\n"
    )
    assert check_results.main([str(prose)]) == 1
    assert "'12.34%' is not in fer2013_full_long_cpu (no such figure)" in capsys.readouterr().out
