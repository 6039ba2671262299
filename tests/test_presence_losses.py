"""Samples that lack a modality: the contrastive losses on present rows, BandAugment,
the encoders and the objectives that refuse absence."""

from __future__ import annotations

import pytest
import torch

from rsmm.augment import BandAugment
from rsmm.errors import ConfigError
from rsmm.losses import mm_ntxent, mm_supcon
from rsmm.models.views import EmbeddedViews, SampleInfo
from rsmm.tasks.objectives import Ranks, check_objective

TAU = 0.2


def _views(layout, presence, labels=None, b=4, d=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    emb = tuple(torch.randn(b, d, generator=g) for _ in layout)
    return EmbeddedViews(emb, tuple(layout), samples=SampleInfo(labels=labels, presence=presence))


def _present_rows(views):
    """The rows, sample ids and labels of the present rows alone."""
    keep = views.present_rows()
    z, ids = views.flat()[keep], views.sample_ids()[keep]
    labels = views.row_labels()
    return z, ids, None if labels is None else labels[keep]


TWO_VIEWS = [("s1", 0), ("s1", 1), ("s2", 0), ("s2", 1)]
ONE_VIEW = [("s1", 0), ("s2", 0)]
PRESENCE = {
    "s1": torch.tensor([True, True, False, True]),
    "s2": torch.tensor([True, False, True, False]),
}


@pytest.mark.parametrize("layout", [TWO_VIEWS, ONE_VIEW])
def test_ntxent_equals_the_loss_of_the_present_rows_alone(layout):
    views = _views(layout, PRESENCE)
    loss = check_objective("ntxent")(None, temperature=TAU).loss(views, Ranks())
    z, ids, _ = _present_rows(views)
    assert torch.allclose(loss, mm_ntxent(z, ids, TAU), atol=1e-6)
    # and it differs from the loss that would keep the zero-filled rows as negatives
    full = mm_ntxent(views.flat(), views.sample_ids(), TAU, anchor_mask=views.present_rows())
    assert not torch.allclose(loss, full, atol=1e-4)


def test_one_modality_two_views_is_a_positive_pair_one_view_a_negative_only():
    only_s1 = {"s1": torch.ones(4, dtype=torch.bool), "s2": torch.tensor([1, 0, 0, 0]).bool()}
    # two views: sample 1..3 keep their s1 pair; with one view they have no positive
    two = _views(TWO_VIEWS, only_s1)
    z, ids, _ = _present_rows(two)
    assert z.shape[0] == 8 + 2
    loss2 = check_objective("ntxent")(None, temperature=TAU).loss(two, Ranks())
    assert torch.allclose(loss2, mm_ntxent(z, ids, TAU), atol=1e-6)
    one = _views(ONE_VIEW, only_s1)
    loss1 = check_objective("ntxent")(None, temperature=TAU).loss(one, Ranks())
    z, ids, _ = _present_rows(one)
    # present rows: s1 of samples 0..3, then s2 of sample 0; only sample 0's two rows
    # are anchors, samples 1..3 (one row each) are in the denominators only
    assert ids.tolist() == [0, 1, 2, 3, 0]
    s = z @ z.T / TAU
    s.fill_diagonal_(float("-inf"))
    logp = s.log_softmax(1)
    ref = -(logp[0, 4] + logp[4, 0]) / 2
    assert torch.allclose(loss1, ref, atol=1e-6)


def test_supcon_equals_the_loss_of_the_present_rows_alone():
    labels = torch.tensor([0, 1, 0, 1])
    views = _views(TWO_VIEWS, PRESENCE, labels=labels)
    loss = check_objective("supcon")(None, temperature=TAU).loss(views, Ranks())
    z, ids, lab = _present_rows(views)
    assert torch.allclose(loss, mm_supcon(z, ids, lab, TAU), atol=1e-6)


def test_all_present_is_unchanged():
    full = {m: torch.ones(4, dtype=torch.bool) for m in ("s1", "s2")}
    a = _views(TWO_VIEWS, full)
    b = _views(TWO_VIEWS, None)
    obj = check_objective("ntxent")(None, temperature=TAU)
    assert torch.allclose(obj.loss(a, Ranks()), obj.loss(b, Ranks()))


def test_objectives_without_presence_support_refuse_it_by_name():
    cls = check_objective("vicreg")
    assert not cls.supports_presence
    obj = cls.__new__(cls)
    torch.nn.Module.__init__(obj)
    with pytest.raises(ConfigError, match="'vicreg' does not handle samples that lack"):
        obj.forward(None, {}, SampleInfo(presence=PRESENCE), Ranks())


def test_band_augment_present_rows_do_not_depend_on_absent_ones():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(4, 2, 8, 8, generator=g) * 10 - 20
    aug = BandAugment(
        {"s1": "s1"}, {"s1": ([-15.0, -20.0], [3.0, 4.0])}, units={"s1": "db"}, views=2
    )
    full = aug.manual_seed(3)({"s1": x}, presence={"s1": torch.ones(4, dtype=torch.bool)})
    lacking = x.clone()
    lacking[1] = 0  # the zero-filled placeholder of an absent row
    mask = torch.tensor([True, False, True, True])
    part = aug.manual_seed(3)({"s1": lacking}, presence={"s1": mask})
    for v_full, v_part in zip(full["s1"], part["s1"]):
        assert torch.equal(v_full[mask], v_part[mask])
        assert torch.equal(v_part[1], torch.zeros_like(v_part[1]))
    # without presence the views are the ones of the full batch
    plain = aug.manual_seed(3)({"s1": x})
    assert torch.equal(plain["s1"][0], full["s1"][0])


def test_encoder_sees_present_rows_only():
    from rsmm.models.multimodal import MultiModalEncoder

    torch.manual_seed(0)
    enc = MultiModalEncoder({"s1": 2}, backbone="resnet18", projection_dim=8, hidden_dim=16)
    enc.train()
    x = torch.randn(4, 2, 16, 16)
    mask = torch.tensor([True, False, True, True])
    lacking = x.clone()
    lacking[1] = 0
    info = SampleInfo(presence={"s1": mask})
    out = enc.embed_views({"s1": [lacking, lacking]}, samples=info)
    ref = enc.embed_views({"s1": [x[mask], x[mask]]})
    for a, b in zip(out.embeddings, ref.embeddings):
        assert torch.allclose(a[mask], b, atol=1e-5)
        assert torch.equal(a[1], torch.zeros_like(a[1]))
