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


def test_a_verdict_row_is_checked_against_the_folders_it_links_and_not_against_old_notes(tmp_path, capsys):
    rows = check_results._folder_rows(check_results.RESULTS / "width05_fer2013_cpu")
    header, by_name = rows
    delta = by_name["vgg16"][next(i for i, h in enumerate(header) if h.startswith("Δ"))]
    p = by_name["vgg16"][next(i for i, h in enumerate(header) if h.startswith("p (paired t"))]
    page = tmp_path / "README.md"
    page.write_text(
        "| claim | regime | what the rows show |\n|---|---|---|\n"
        f"| a | one | `vgg16` {delta}, paired t p {p} ([table](experiments/results/width05_fer2013_cpu/README.md)) |\n"
        "| | two | `vgg16` -1.22 [-4.91, +2.48]; corrected p 0.498, Holm 0.971 "
        "([table](experiments/results/pretrained_modules_ckplus48_cpu/README.md)) |\n"
    )
    assert check_results.main([str(page)]) == 1
    out = capsys.readouterr().out
    assert f"'{delta}'" not in out and f"p {p}" not in out
    assert "README.md:4: '-1.22 [-4.91, +2.48]' is not in pretrained_modules_ckplus48_cpu" in out
    # 0.971 is quoted in that folder's notes (an older table), but not in its table.md
    assert "README.md:4: 'Holm 0.971' is not in pretrained_modules_ckplus48_cpu" in out
    assert "'p 0.498'" not in out
    assert "5 cited figures checked in 1 files, 2 differ" in out


def test_a_comparison_written_into_a_subfolder_counts_as_the_folders_table(tmp_path, capsys):
    along = check_results.RESULTS / "ferplus_targets_perface_cpu" / "votes_vs_label" / "along.md"
    row = next(
        ln for ln in along.read_text().splitlines() if ln.startswith("| vgg16 | data.source.target=label")
    )
    delta = row.split("|")[5].strip()
    page = tmp_path / "README.md"
    page.write_text(
        f"Votes against the label for `vgg16`: {delta}, and -9.87 [-9.99, -9.11] for nothing "
        "([table](experiments/results/ferplus_targets_perface_cpu/README.md)).\n"
    )
    assert check_results.main([str(page)]) == 1
    out = capsys.readouterr().out
    assert f"'{delta}'" not in out
    assert "'-9.87 [-9.99, -9.11]' is not in ferplus_targets_perface_cpu" in out
