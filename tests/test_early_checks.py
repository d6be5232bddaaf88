"""A budget no subnet fits fails before the ranker runs the model (selfgen scoring is most of a rank)."""

from __future__ import annotations

import pytest

import zerolm_prune.driver as driver_mod
from zerolm_prune.cli import main
from zerolm_prune.driver import prune_to_budget


@pytest.fixture
def no_scoring(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the ranker was built before the budget was checked")

    monkeypatch.setattr(driver_mod, "make_scoring", refuse)


def test_rank_rejects_an_impossible_budget_before_scoring(no_scoring, capsys):
    assert main(["rank", "smollm2-135m", "--space", "smollm2-135m", "--order", "prefix", "--budget", "0.1"]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error" in line]  # the rest is progress bars
    assert len(errors) == 1 and "below the smallest subnet" in errors[0] and "--budget 0.6383" in errors[0]
    assert "Traceback" not in err


def test_rank_rejects_an_absurd_top_k_in_one_line_before_scoring(no_scoring, capsys):
    # SmolLM2's space has 10^30 subnets, so 10^22 passes the space-size check; it used to crash numpy
    assert main(["rank", "smollm2-135m", "--space", "smollm2-135m", "--order", "prefix", "--budget", "0.8",
                 "--top-k", "10000000000000000000000"]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error" in line]
    assert len(errors) == 1 and "at most 100,000" in errors[0] and "Traceback" not in err


def test_run_rejects_an_impossible_budget_before_scoring(no_scoring, smollm2, tmp_path):
    from zerolm_prune.errors import UserError

    with pytest.raises(UserError, match="below the smallest subnet"):
        prune_to_budget("smollm2-135m", "smollm2-135m", 0.1, out=tmp_path / "run", order="prefix", loaded=smollm2,
                        evaluate=False, save=False, progress=False, log=lambda *a: None)
    assert not (tmp_path / "run" / "ranked.json").exists()


def test_rank_rejects_an_unknown_ranker_in_one_line(capsys):
    assert main(["rank", "smollm2-135m", "--space", "smollm2-135m", "--budget", "0.8", "--ranker", "nope"]) == 2
    err = capsys.readouterr().err
    assert "unknown ranker 'nope'; choose one of: " in err and "Traceback" not in err
    assert "Loading weights" not in err  # checked before the model loads


@pytest.mark.parametrize("argv", [["demo", "--limit", "0"], ["eval", "smollm2-135m", "--limit", "-3"],
                                  ["run", "smollm2-135m", "--budget", "0.8", "--out", "x", "--limit", "ten"]])
def test_document_limits_must_be_positive_whole_numbers(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:  # argparse's usage error: exit 2 before anything loads
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "argument --limit" in err and "Traceback" not in err and "Loading" not in err


def test_an_unwritable_output_fails_in_one_line_before_loading(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")  # a file where the output folder should be: mkdir fails
    assert main(["rank", "smollm2-135m", "--space", "smollm2-135m", "--budget", "0.8",
                 "--out", str(blocker / "ranked.json")]) == 2
    err = capsys.readouterr().err
    assert f"cannot write {blocker / 'ranked.json'}" in err and "Traceback" not in err and "Loading" not in err


def test_atomic_write_turns_an_os_error_into_one_line(tmp_path):
    from zerolm_prune.atomic import write_json
    from zerolm_prune.errors import UserError

    (tmp_path / "file").write_text("")
    with pytest.raises(UserError, match="cannot write"):
        write_json(tmp_path / "file" / "x.json", {})


def test_cli_reports_a_path_error_in_one_line_and_keeps_other_os_errors(monkeypatch, capsys):
    import zerolm_prune.commands.info as info_cmd

    def missing(args):
        raise FileNotFoundError(2, "No such file or directory", "/data/gone/model.safetensors")

    monkeypatch.setattr(info_cmd, "run", missing)
    assert main(["info", "smollm2-135m"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["zerolm-prune: error: /data/gone/model.safetensors: No such file or directory; "
                   "check the path and its permissions"]

    def broken(args):
        raise OSError("device lost")  # no path: a bug or the machine, so the traceback stays

    monkeypatch.setattr(info_cmd, "run", broken)
    with pytest.raises(OSError, match="device lost"):
        main(["info", "smollm2-135m"])
