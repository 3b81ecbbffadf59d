"""What a workspace holds, through a real store and back: the trainer's session, its run and model, audit trees.

The tiny embedder of tests/test_training_session.py (mean colour, a real Keras model) stands in
for EfficientNet-Lite0, so the numbers after reopening are known to equal the ones before.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from cnnviz.model import registry
from cnnviz.train.session import TrainingSession
from cnnviz.workspace import contents, ids
from cnnviz.workspace.store import SQLiteStore
from tests.test_training_session import BASE, embed_for, embedder, lesson_zip  # noqa: F401  (fixture)


def test_pack_keeps_trees_of_arrays_and_refuses_objects():
    tree: dict = {
        "sets": {"Gemälde": {"probs": np.arange(6, dtype=np.float32).reshape(2, 3), "labels": None}},
        "cams": {("probe", 3): np.ones((4, 4), np.float32)},
        "evaluation": {"auroc": float("nan"), "n": np.int64(7), "flag": np.bool_(True)},
        "files": ["a.png", "b.png"],
        "pair": (1, "x"),
        "__odd": 1,
    }
    back = contents.unpack(contents.pack(tree))
    assert np.array_equal(back["sets"]["Gemälde"]["probs"], tree["sets"]["Gemälde"]["probs"])
    assert back["sets"]["Gemälde"]["probs"].dtype == np.float32 and back["sets"]["Gemälde"]["labels"] is None
    assert np.array_equal(back["cams"][("probe", 3)], np.ones((4, 4))) and back["pair"] == (1, "x")
    assert np.isnan(back["evaluation"]["auroc"]) and back["evaluation"]["n"] == 7 and back["__odd"] == 1
    with pytest.raises(TypeError):
        contents.pack({"x": np.array([object()], dtype=object)})
    with pytest.raises(TypeError):
        contents.pack({"x": lambda: 0})
    with pytest.raises(ValueError):
        contents.unpack(b"PK\x03\x04 not an npz")


def test_trainer_session_run_and_model_round_trip(embedder, tmp_path):  # noqa: F811
    trainer = TrainingSession()
    embed = embed_for(trainer, embedder)
    trainer.add_zip(lesson_zip(), "paintings.zip", embed)
    trainer.rename(trainer.classes[0].id, "Rot · red")
    run = trainer.start_run(BASE, {"epochs": 4, "batch_size": 4, "learning_rate": 0.05})
    TrainingSession.train(run)
    assert trainer.finish_run(run, embedder, base_title="Mean colour", stopped=False) is run
    assert run.model is not None and run.card is not None

    store = SQLiteStore(tmp_path / "ws.sqlite3")
    ws = ids.new_id()
    store.create(ws)
    name = run.name
    items = [
        ("trainer", "session", contents.trainer_outline(trainer, name)),
        ("run", "head", contents.run_item(run)),
        ("model", name, contents.model_bytes(run.model, run.classes)),
        ("card", name, json.dumps(run.card).encode()),
    ]
    items += [("image", k, contents.image_item(t, e)) for k, (t, e) in trainer.store.entries().items()]
    if trainer.example is not None:
        items.append(("example", "image", contents.pack({"image": trainer.example})))
    store.write(ws, items)

    loads = []

    def load(n=name):
        loads.append(n)
        return store.read(ws, "model", n)

    models = {name: contents.ModelEntry(json.loads(store.read(ws, "card", name) or b"{}"), load)}
    back = contents.restore_trainer(
        store.read(ws, "trainer", "session") or b"",
        store.read_kind(ws, "image"),
        run=store.read(ws, "run", "head"),
        example=store.read(ws, "example", "image"),
        models=models,
    )
    assert [(c.name, c.keys, c.files) for c in back.classes] == [(c.name, c.keys, c.files) for c in trainer.classes]
    assert back.classes[0].name == "Rot · red" and back.testset == trainer.testset and back.facts == trainer.facts
    key = trainer.classes[0].keys[0]
    assert np.array_equal(back.store.thumbnail(key), trainer.store.thumbnail(key))  # type: ignore[arg-type]
    assert np.array_equal(back.store.embedding(key, BASE), trainer.store.embedding(key, BASE))  # type: ignore[arg-type]
    assert back.dataset_check(BASE).sentences == trainer.dataset_check(BASE).sentences
    assert back.add_class().name == trainer.add_class().name  # the card counter came back too

    again = back.run
    assert again is not None and again.finished and not loads, "a reopened run loads its model only when used"
    assert again.history.rows == run.history.rows and again.name == name
    assert again.results is not None and run.results is not None
    assert again.results.test is not None and run.results.test is not None
    assert again.results.test.accuracy == run.results.test.accuracy
    assert np.array_equal(again.results.test.confusion, run.results.test.confusion)
    assert trainer.test_rows(run) == back.test_rows(again)
    probe = np.full((1, 16, 16, 3), 200, np.float32)
    assert np.allclose(again.model.predict(probe, verbose=0), run.model.predict(probe, verbose=0), atol=1e-6)
    assert loads == [name] and again.model is models[name]["model"], "one model, loaded once, shared with page 3 and 5"

    def reopened(embedder_for):
        entry = contents.ModelEntry(json.loads(store.read(ws, "card", name) or b"{}"), lambda: b"PK damaged")
        found = contents.restore_trainer(
            store.read(ws, "trainer", "session") or b"",
            store.read_kind(ws, "image"),
            run=store.read(ws, "run", "head"),
            models={name: entry},
            embedder_for=embedder_for,
        )
        return found.run, entry

    rebuilt, entry = reopened(lambda base: embedder)  # damaged bytes: the run's head rebuilds its model
    assert np.allclose(rebuilt.model.predict(probe, verbose=0), run.model.predict(probe, verbose=0), atol=1e-6)
    assert entry["model"] is rebuilt.model
    with pytest.raises(registry.ModelError, match="could not be read back from your workspace"):
        getattr(reopened(None)[0], "model")  # noqa: B009  (reading it loads it)

    damaged = contents.ModelEntry({"name": "gone"}, lambda: b"PK\x03\x04 not a keras file")
    with pytest.raises(registry.ModelError):  # the upload's checks: one sentence, no crash
        damaged["model"]
    missing = contents.ModelEntry({"name": "gone"}, lambda: None)
    with pytest.raises(registry.ModelError, match="no longer in your workspace"):
        missing["model"]
