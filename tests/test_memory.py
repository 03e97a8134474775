"""Colors from the training set (onepunch/memory.py): the vote, the memory in color.pt, and a page's shapes taking
the colors their look-alikes had in training."""

import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from onepunch import memory
from onepunch.inference import PageColorizer
from tests.test_follow import character, delta

RED, RED2, BLUE = [200, 30, 30], [204, 34, 28], [40, 60, 200]


def remembered(*colors) -> memory.Memory:
    return memory.Memory(np.eye(len(colors), dtype=np.float32), np.uint8(colors))


def test_a_shape_takes_the_color_most_of_its_nearest_agree_on():
    mem = remembered(RED, RED2, BLUE)
    # The three nearest: two reds within NEAR of each other, one blue: red wins (the medoid of the three).
    assert list(memory.vote(np.float32([0.99, 0.98, 0.97]), mem)) in (RED, RED2)
    # Three colors that agree on nothing: the shape keeps the net's color.
    far = remembered(RED, BLUE, [30, 200, 30])
    assert memory.vote(np.float32([0.99, 0.98, 0.97]), far) is None
    # Nothing alike enough votes: below SIMILAR.
    assert memory.vote(np.float32([0.5, 0.4, 0.3]), mem) is None
    # A single look-alike above SIMILAR decides alone.
    assert list(memory.vote(np.float32([0.2, 0.3, 0.95]), mem)) == BLUE


def test_a_memory_is_spread_over_the_shards_and_capped():
    assert memory.spread([("a", 10), ("b", 10), ("c", 1)], 9) == [("a", 3), ("b", 3), ("c", 1)]
    assert memory.spread([("a", 10)], 0) == [] and memory.spread([], 5) == []
    assert sum(n for _, n in memory.spread([("a", 2), ("b", 100)], 50)) == 27  # each shard gives at most its share
    many = [memory.follow.Reference(np.ones((10, 2), np.float32), np.zeros((10, 3), np.uint8))] * 3
    old, memory.MAX_SHAPES = memory.MAX_SHAPES, 7
    try:
        assert len(memory.Memory.of(many, 3).keys) == 7
    finally:
        memory.MAX_SHAPES = old


TRAINING = [(128, 110, 110), (100, 120, 100), (150, 115, 120), (120, 105, 90), (135, 125, 105)]
"""The character in the training pairs: drawn at several places and sizes."""


@pytest.mark.slow  # the fast tier has the vote and train-color's memory (test_train_color.py)
def test_a_shape_takes_the_color_its_look_alikes_had_in_training(plain_color_pt, tmp_path):
    """A colorizer trained a few steps on ordinary data colors a character in wrong colors; with the memory of
    training pairs that drew it (another place, another size), each of its shapes comes out in its colors, the
    person's clicks still win, and the memory is in color.pt (weights_only) and can be turned off."""
    ckpt = tmp_path / "mem.pt"
    shutil.copy(plain_color_pt, ckpt)
    learn = PageColorizer(ckpt, device="cpu", working_size=256)
    refs = [learn.remember(character(256, cx, cy, s, False), Image.fromarray(character(256, cx, cy, s, True)))
            for cx, cy, s in TRAINING]
    memory.attach(ckpt, memory.Memory.of(refs, len(refs)))
    state = torch.load(ckpt, weights_only=True)["memory"]
    assert state["images"] == len(TRAINING) and len(state["keys"]) == len(state["colors"]) == 3 * len(TRAINING)

    scan, truth = character(256, 110, 115, 115, False), character(256, 110, 115, 115, True)
    on = PageColorizer(ckpt, device="cpu", working_size=256)
    off = PageColorizer(ckpt, device="cpu", working_size=256, memory="off")
    with_memory = np.asarray(on.colorize(Image.fromarray(scan)))
    without = np.asarray(off.colorize(Image.fromarray(scan)))
    assert max(delta(with_memory, scan, truth)) < 5, delta(with_memory, scan, truth)
    assert min(delta(without, scan, truth)) > 10, delta(without, scan, truth)
    # Off, or a color.pt without a memory: the net's colors exactly as before.
    before = np.asarray(PageColorizer(plain_color_pt, device="cpu", working_size=256).colorize(Image.fromarray(scan)))
    assert np.array_equal(without, before)
    # The person's click on the hat wins over what the memory says.
    green = [30, 200, 30]
    clicked = np.asarray(on.colorize(Image.fromarray(scan), hints=[{"x": 110, "y": 70, "color": green}]))
    hat = delta(clicked, scan, np.where((truth == [200, 30, 30]).all(2)[..., None], np.uint8(green), truth))
    assert max(hat) < 5, hat


def test_a_malformed_memory_is_a_one_line_error(color_pt, tmp_path):
    from onepunch.checkpoint import save_atomic
    from onepunch.errors import UserError

    ckpt = tmp_path / "bad.pt"
    state = torch.load(color_pt, weights_only=True)
    save_atomic({**state, "memory": {"keys": torch.zeros(4, 7), "colors": torch.zeros(3, 3, dtype=torch.uint8),
                                     "images": 1}}, ckpt)
    with pytest.raises(UserError, match="memory is malformed"):
        PageColorizer(ckpt, device="cpu")
    assert PageColorizer(ckpt, device="cpu", memory="off").memory is None
    # Well formed, but of another net's width: said when a page needs it.
    save_atomic({**state, "memory": memory.Memory(np.ones((3, 7), np.float32), np.uint8([RED] * 3)).state()}, ckpt)
    page = Image.fromarray(character(128, 64, 60, 60, False))
    with pytest.raises(UserError, match="describes shapes by 7 numbers"):
        PageColorizer(ckpt, device="cpu").colorize(page)
