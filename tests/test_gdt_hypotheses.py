"""Every GDT hypothesis term by term: positives, local negatives, bank rows and weights (spec 4.3, 4.4, App. B).

Each local or "other-process" embedding row is a distinct random unit vector with a known label
``(view symbol, rank, sample)`` (rank 0 = this process). ``nce_loss`` is wrapped to record, per call, the labels of
the query rows, the key rows (diagonal = positives, the rest = local negatives) and the bank rows; the weight of
each call in the total loss is read back with autograd (d total / d term).
"""

import collections

import pytest
import torch
import torch.nn.functional as F

import stica_ext.losses.gdt as gdt_mod
from stica_ext.config import HYPOTHESIS_NAMES, get_cfg
from stica_ext.losses import GDTNCELoss, gdt_loss, nce_loss, term_names

N = 2  # local batch
DIM = 16
SYMBOLS = {"orig": ("V", "A"), "rev": ("VR", "AR"), "shift": ("V2", "A2"), "shift_rev": ("V2R", "A2R")}
O, R, S, SR = (("orig",) + SYMBOLS["orig"], ("rev",) + SYMBOLS["rev"], ("shift",) + SYMBOLS["shift"],
               ("shift_rev",) + SYMBOLS["shift_rev"])


# ------------------------------------------------------------------------------------------------------------------
# Spec 4.3, restated: a block is (stats key, [(weight, (query, positives, bank...)), ...]); "X*" = gathered rows.
# ------------------------------------------------------------------------------------------------------------------
def P(q, k, *bank):
    return (q, k, bank)


def Base1(o, w):
    _, V, A = o
    return (f"loss/base1-{o[0]}", w, [(w / 2, P(V, A, A + "*")), (w / 2, P(A, V, V + "*"))])


def Base(o, t, w):
    (_, V, A), (_, VT, AT) = o, t
    return (f"loss/base-{o[0]}-{t[0]}", w, [
        (w / 4, P(V, A, A + "*", AT + "*")), (w / 4, P(A, V, V + "*", VT + "*")),
        (w / 4, P(VT, AT, A + "*", AT + "*")), (w / 4, P(AT, VT, V + "*", VT + "*"))])


def Var(o, t, w):
    (_, V, A), (_, VT, AT) = o, t
    return (f"loss/var-{o[0]}-{t[0]}", w, [
        (w / 4, P(V, A, A + "*", AT + "*", AT)), (w / 4, P(A, V, V + "*", VT + "*", VT)),
        (w / 4, P(VT, AT, A + "*", AT + "*", A)), (w / 4, P(AT, VT, V + "*", VT + "*", V))])


def Inv(o, t, w):
    (_, V, A), (_, VT, AT) = o, t
    return (f"loss/inv-{o[0]}-{t[0]}", w, [
        (w / 4, P(V, AT, AT + "*", A + "*")), (w / 4, P(A, VT, VT + "*", V + "*")),
        (w / 4, P(VT, A, AT + "*", A + "*")), (w / 4, P(AT, V, VT + "*", V + "*"))])


SPEC_4_3 = {
    1: [Base1(O, 1)],
    2: [Var(O, R, 1)],
    3: [Base(O, R, 1 / 2), Inv(O, R, 1 / 2)],
    4: [Var(O, S, 1)],
    5: [Base(O, S, 1 / 2), Inv(O, S, 1 / 2)],
    6: [Var(O, R, 1 / 4), Var(S, SR, 1 / 4), Var(O, S, 1 / 4), Var(R, SR, 1 / 4)],
    7: [Base(O, R, 1 / 5), Inv(O, R, 1 / 5), Inv(S, SR, 1 / 5), Var(O, S, 1 / 5), Var(R, SR, 1 / 5)],
    8: [Base(O, S, 1 / 5), Var(O, R, 1 / 5), Var(S, SR, 1 / 5), Inv(O, S, 1 / 5), Inv(R, SR, 1 / 5)],
    9: [Base(O, R, 1 / 6), Base(O, S, 1 / 6), Inv(O, R, 1 / 6), Inv(S, SR, 1 / 6), Inv(O, S, 1 / 6),
        Inv(R, SR, 1 / 6)],
}

# Appendix B (reference trace, one extra process), video queries; per block in execution order:
# (set 1, set 2) as "query>positives | bank", "X*" = other-process rows (xK = K copies), "X" = all local rows.
# The audio-query lines of the trace are the same with A and V swapped.
APPENDIX_B = {
    1: [("V>A | A*",)],
    2: [("V>A | A*,AR*,AR", "VR>AR | A*,AR*,A")],
    3: [("V>A | A*,AR*", "VR>AR | A*,AR*"),
        ("V>AR | AR*x2,A*", "VR>A | AR*x2,A*")],
    4: [("V>A | A*,A2*,A2", "V2>A2 | A*,A2*,A")],
    5: [("V>A | A*,A2*", "V2>A2 | A*,A2*"),
        ("V>A2 | A2*x2,A*", "V2>A | A2*x2,A*")],
    6: [("V>A | A*,AR*,AR", "VR>AR | A*,AR*,A"),
        ("V2>A2 | A2*,A2R*,A2R", "V2R>A2R | A2*,A2R*,A2"),
        ("V>A | A*,AR*,A2*,A2R*,A2", "V2>A2 | A*,AR*,A2*,A2R*,A"),
        ("VR>AR | AR*,A2R*,A2R", "V2R>A2R | AR*,A2R*,AR")],
    7: [("V>A | A*,AR*", "VR>AR | A*,AR*"),
        ("V>AR | AR*x2,A*", "VR>A | AR*x2,A*"),
        ("V2>A2R | A2R*,A2*", "V2R>A2 | A2R*,A2*"),
        ("V>A | A*,AR*,A2*,A2", "V2>A2 | A*,AR*,A2*,A"),
        ("VR>AR | AR*x2,A*,A2R*,A2*,A2R", "V2R>A2R | AR*x2,A*,A2R*,A2*,AR")],
    8: [("V>A | A*,A2*", "V2>A2 | A*,A2*"),
        ("V>A | A*,A2*,AR*,AR", "VR>AR | A*,A2*,AR*,A"),
        ("V2>A2 | A2*,A2R*,A2R", "V2R>A2R | A2*,A2R*,A2"),
        ("V>A2 | A2*x2,A2R*,A*,AR*", "V2>A | A2*x2,A2R*,A*,AR*"),
        ("VR>A2R | A2R*,AR*", "V2R>AR | A2R*,AR*")],
    9: [("V>A | A*,AR*", "VR>AR | A*,AR*"),
        ("V>A | A*,AR*,A2*", "V2>A2 | A*,AR*,A2*"),
        ("V>AR | AR*x2,A*,A2*", "VR>A | AR*x2,A*,A2*"),
        ("V2>A2R | A2R*,A2*", "V2R>A2 | A2R*,A2*"),
        ("V>A2 | A2*x2,A*,AR*", "V2>A | A2*x2,A*,AR*"),
        ("VR>A2R | A2R*,A2*x2,AR*x2,A*", "V2R>AR | A2R*,A2*x2,AR*x2,A*")],
}


# ------------------------------------------------------------------------------------------------------------------
# A tagged world: local views with gradient, and distinct rows for every other process.
# ------------------------------------------------------------------------------------------------------------------
class World:
    def __init__(self, world_size, seed=0, dim=DIM):
        g = torch.Generator().manual_seed(seed)
        self.world_size = world_size
        self.views, self.rows, self.labels, self.others = {}, [], [], {}
        for name, (vs, as_) in SYMBOLS.items():
            pair = []
            for sym in (vs, as_):
                per_rank = F.normalize(torch.randn(world_size, N, dim, generator=g), dim=-1)
                for r in range(world_size):
                    for i in range(N):
                        self.rows.append(per_rank[r, i])
                        self.labels.append((sym, r, i))
                local = per_rank[0].clone().requires_grad_(True)
                self.others[sym] = per_rank[1:].reshape(-1, dim)  # rank order 1, 2, ...
                pair.append(local)
            self.views[name] = tuple(pair)
        self.table = torch.stack(self.rows)
        self.gather_calls = []

    def gather(self, x):
        for name, pair in self.views.items():
            for sym, t in zip(SYMBOLS[name], pair):
                if t is x:
                    self.gather_calls.append(sym)
                    return self.others[sym].clone()
        raise AssertionError("gather called with a tensor that is not a view embedding")

    def label(self, t):
        """Labels of the rows of ``t`` (each must be exactly one tagged row)."""
        t = t.detach().reshape(-1, self.table.shape[1])
        if t.shape[0] == 0:
            return []
        same = (t[:, None, :] == self.table[None, :, :]).all(dim=-1)  # exact copies of tagged rows
        assert torch.all(same.sum(dim=1) == 1), "a row is not one of the tagged embeddings"
        return [self.labels[j] for j in same.float().argmax(dim=1).tolist()]

    def expand(self, item):
        """Spec notation -> ordered row labels: "A*" = other processes' rows in rank order, "A" = local rows."""
        if item.endswith("*"):
            return [(item[:-1], r, i) for r in range(1, self.world_size) for i in range(N)]
        return [(item, 0, i) for i in range(N)]


Call = collections.namedtuple("Call", "query keys bank loss acc")


@pytest.fixture
def recorder(monkeypatch):
    calls = []

    def wrapped(queries, keys, bank=None, temperature=0.07):
        loss, acc = nce_loss(queries, keys, bank, temperature)
        bank = [] if bank is None else ([bank] if torch.is_tensor(bank) else list(bank))
        calls.append(Call(queries, keys, bank, loss, acc))
        return loss, acc

    monkeypatch.setattr(gdt_mod, "nce_loss", wrapped)
    return calls


def run(world, calls, hypothesis, **kw):
    calls.clear()
    loss, stats = gdt_loss(world.views, hypothesis, 0.07, gather=world.gather, **kw)
    weights = torch.autograd.grad(loss, [c.loss for c in calls], retain_graph=True)
    recorded = []
    for c, w in zip(calls, weights):
        bank = [lab for b in c.bank for lab in world.label(b)]
        recorded.append((float(w), world.label(c.query), world.label(c.keys), bank, c))
    return loss, stats, recorded


def expected_terms(world, hypothesis):
    out = []
    for _, _, terms in SPEC_4_3[hypothesis]:
        for w, (q, k, bank) in terms:
            out.append((w, world.expand(q), world.expand(k), [lab for b in bank for lab in world.expand(b)]))
    return out


def as_counter(terms):
    return collections.Counter((round(w, 6), tuple(q), tuple(k), tuple(b)) for w, q, k, b, *_ in terms)


# ------------------------------------------------------------------------------------------------------------------
# Clean formulation (spec 4.3)
# ------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("world_size", [1, 2, 3])
@pytest.mark.parametrize("hypothesis", range(1, 10))
def test_terms_positives_banks_and_weights_match_spec_4_3(recorder, hypothesis, world_size):
    world = World(world_size, seed=hypothesis)
    _, _, recorded = run(world, recorder, hypothesis)
    expected = expected_terms(world, hypothesis)
    assert len(recorded) == len(expected)
    assert as_counter(recorded) == as_counter(expected)
    # the blocks are evaluated in the table's order
    blocks = [len(terms) for _, _, terms in SPEC_4_3[hypothesis]]
    start = 0
    for (_, _, terms), n in zip(SPEC_4_3[hypothesis], blocks):
        got = as_counter(recorded[start:start + n])
        assert got == as_counter([(w, world.expand(q), world.expand(k),
                                   [lab for b in bank for lab in world.expand(b)]) for w, (q, k, bank) in terms])
        start += n
    # each needed view tensor is gathered exactly once
    needed = [s for name in gdt_mod.views_for_hypothesis(hypothesis) for s in SYMBOLS[name]]
    assert world.gather_calls == needed


@pytest.mark.parametrize("hypothesis", range(1, 10))
def test_total_is_weighted_sum_of_terms_and_stats(recorder, hypothesis):
    world = World(2, seed=10 + hypothesis)
    loss, stats, recorded = run(world, recorder, hypothesis)
    # total = Σ (spec weight) · (recorded term loss), terms matched to the spec by their rows
    spec_w = {(tuple(q), tuple(k), tuple(b)): w for w, q, k, b in expected_terms(world, hypothesis)}
    total = sum(spec_w[(tuple(q), tuple(k), tuple(b))] * c.loss for _, q, k, b, c in recorded)
    assert torch.allclose(loss, total, atol=1e-6)
    # per-block stats: one key per block, the mean of its NCE terms; Σ block weight · block loss = total
    names = [name for name, _, _ in SPEC_4_3[hypothesis]]
    assert term_names(hypothesis) == names
    assert set(stats) == set(names) | {"nce_acc"}
    start = 0
    weighted = 0.0
    for name, w, terms in SPEC_4_3[hypothesis]:
        block = torch.stack([c.loss for *_, c in recorded[start:start + len(terms)]]).mean()
        assert torch.allclose(stats[name], block, atol=1e-6)
        weighted = weighted + w * stats[name]
        start += len(terms)
    assert torch.allclose(loss, weighted, atol=1e-6)
    for v in stats.values():
        assert v.dim() == 0 and not v.requires_grad
        v.item()
    # nce_acc = mean over all NCE terms of argmax == positive
    assert torch.allclose(stats["nce_acc"], torch.stack([c.acc for *_, c in recorded]).mean())
    # the gradient reaches the local embeddings
    loss.backward()
    assert all(t.grad is not None for name in gdt_mod.views_for_hypothesis(hypothesis) for t in world.views[name])


def test_names_and_numbers_select_the_same_hypothesis():
    world = World(2, seed=3)
    for num, name in HYPOTHESIS_NAMES.items():
        a, _ = gdt_loss(world.views, num, gather=world.gather)
        b, _ = gdt_loss(world.views, name, gather=world.gather)
        c, _ = gdt_loss(world.views, str(num), gather=world.gather)
        assert torch.equal(a, b) and torch.equal(a, c)


@pytest.mark.parametrize("bad", [0, 10, "flip", "v_reverse"])
def test_unknown_hypothesis_is_a_clear_error(bad):
    world = World(1)
    with pytest.raises(ValueError, match="unknown hypothesis .*choose one of 1 \\(cross_modal_baseline\\)"):
        gdt_loss(world.views, bad)
    with pytest.raises(ValueError, match="unknown hypothesis"):
        GDTNCELoss(hypothesis=bad)


def test_missing_view_is_a_clear_error():
    world = World(1)
    with pytest.raises(KeyError, match="shift_rev"):
        gdt_loss({k: world.views[k] for k in ("orig", "rev", "shift")}, "i_reversal_i_shift")


# ------------------------------------------------------------------------------------------------------------------
# Reference bank aliasing (spec 4.4 / Appendix B)
# ------------------------------------------------------------------------------------------------------------------
def swap_av(s):
    return s.replace("A", "#").replace("V", "A").replace("#", "V")


def parse_line(line):
    head, bank = line.split(" | ")
    q, k = head.split(">")
    items = []
    for it in bank.split(","):
        sym, _, count = it.partition("x")
        items.append((sym, int(count or 1)))
    return q, k, items


def check_aliased_bank(world, bank, items):
    """``bank``: recorded row labels; ``items``: Appendix-B entries ("X*" with copy count, then local "X")."""
    chunk = (world.world_size - 1) * N
    gathered_items = [(s[:-1], c) for s, c in items if s.endswith("*")]
    local_items = [s for s, _ in items if not s.endswith("*")]
    n_gathered = chunk * sum(c for _, c in gathered_items)
    # local rows: exactly the listed local views, at the end of the bank
    assert bank[n_gathered:] == [lab for s in local_items for lab in world.expand(s)]
    gathered = bank[:n_gathered]
    assert all(r > 0 for _, r, _ in gathered)
    # gathered rows: whole copies of views (all other processes' rows, rank order), with the listed multiplicities
    copies = [gathered[j:j + chunk] for j in range(0, n_gathered, chunk)]
    syms = []
    for cp in copies:
        assert cp == world.expand(cp[0][0] + "*")
        syms.append(cp[0][0])
    assert collections.Counter(syms) == collections.Counter(dict(gathered_items))
    first_seen = list(dict.fromkeys(syms))
    assert first_seen == [s for s, _ in gathered_items]


@pytest.mark.parametrize("world_size", [2, 3])
@pytest.mark.parametrize("hypothesis", range(1, 10))
def test_reference_aliasing_reproduces_appendix_b(recorder, hypothesis, world_size):
    world = World(world_size, seed=20 + hypothesis)
    _, stats, recorded = run(world, recorder, hypothesis, reference_bank_aliasing=True)
    blocks = APPENDIX_B[hypothesis]
    per_block = [len(terms) for _, _, terms in SPEC_4_3[hypothesis]]
    assert len(blocks) == len(per_block) and len(recorded) == sum(per_block)
    start = 0
    for (name, w, terms), halves, n in zip(SPEC_4_3[hypothesis], blocks, per_block):
        group = recorded[start:start + n]
        start += n
        by_query = {q[0][0]: (wt, q, k, b) for wt, q, k, b, _ in group}
        assert len(by_query) == n
        lines = [line for h in halves for line in (h, swap_av(h))]  # both modalities, both halves
        for line in lines:
            q, k, items = parse_line(line)
            wt, q_rows, k_rows, bank = by_query[q]
            assert q_rows == world.expand(q) and k_rows == world.expand(k)
            assert wt == pytest.approx(w / n)  # weights as in the clean formulation
            check_aliased_bank(world, bank, items)
    assert set(stats) == set(term_names(hypothesis)) | {"nce_acc"}


@pytest.mark.parametrize("hypothesis", range(1, 10))
def test_aliasing_equals_clean_with_one_process(hypothesis):
    world = World(1, seed=30 + hypothesis)
    a, sa = gdt_loss(world.views, hypothesis, gather=world.gather)
    b, sb = gdt_loss(world.views, hypothesis, gather=world.gather, reference_bank_aliasing=True)
    assert torch.equal(a, b)
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_aliasing_changes_the_loss_only_where_banks_differ():
    world = World(2, seed=5)
    for h in range(1, 10):
        a, _ = gdt_loss(world.views, h, gather=world.gather)
        b, _ = gdt_loss(world.views, h, gather=world.gather, reference_bank_aliasing=True)
        if h in (1, 2, 4):  # Appendix B banks equal the clean ones
            assert torch.equal(a, b), h
        else:
            assert not torch.allclose(a, b), h


def test_aliasing_state_does_not_leak_across_steps():
    world = World(2, seed=6)
    first, _ = gdt_loss(world.views, 9, gather=world.gather, reference_bank_aliasing=True)
    second, _ = gdt_loss(world.views, 9, gather=world.gather, reference_bank_aliasing=True)
    assert torch.equal(first, second)


# ------------------------------------------------------------------------------------------------------------------
# GDT.NUM_NEGATIVES
# ------------------------------------------------------------------------------------------------------------------
def is_subsequence(small, big):
    it = iter(big)
    return all(any(x == y for y in it) for x in small)


def split_bank(bank):
    gathered = [lab for lab in bank if lab[1] > 0]
    local = [lab for lab in bank if lab[1] == 0]
    assert bank == gathered + local
    return gathered, local


@pytest.mark.parametrize("aliasing", [False, True])
@pytest.mark.parametrize("hypothesis", [2, 3, 9])
def test_num_negatives_subsamples_gathered_rows_with_shared_indices(recorder, hypothesis, aliasing):
    world = World(4, seed=40 + hypothesis)  # 3 other processes: 6 rows per gathered view
    kept = 5
    _, _, full = run(world, recorder, hypothesis, reference_bank_aliasing=aliasing)
    gen = torch.Generator().manual_seed(123)
    rng_before = torch.get_rng_state()
    loss, _, sub = run(world, recorder, hypothesis, reference_bank_aliasing=aliasing, num_negatives=kept,
                       generator=gen)
    assert torch.equal(torch.get_rng_state(), rng_before)  # an explicit generator leaves the global RNG alone
    assert len(full) == len(sub)
    start = 0
    for _, _, terms in SPEC_4_3[hypothesis]:
        full_banks, sub_banks = [], []
        for j in range(start, start + len(terms)):
            wf, qf, kf, bf, _ = full[j]
            ws, qs, ks, bs, _ = sub[j]
            assert (wf, qf, kf) == (ws, qs, ks)
            g_full, l_full = split_bank(bf)
            g_sub, l_sub = split_bank(bs)
            assert l_sub == l_full  # local negatives are never dropped
            assert len(g_full) > kept and len(g_sub) == kept
            assert is_subsequence(g_sub, g_full)  # drawn without replacement, kept in bank order
            # write both modalities' banks in one alphabet (audio rows for video queries -> video names)
            to_video = swap_av if qf[0][0].startswith("V") else (lambda s: s)
            full_banks.append([(to_video(s), r, i) for s, r, i in g_full])
            sub_banks.append([(to_video(s), r, i) for s, r, i in g_sub])
            if not aliasing:
                assert len(set(g_sub)) == kept
        # mirrored full banks, and the same kept rows for both modalities and both halves of the block
        assert all(b == full_banks[0] for b in full_banks)
        assert all(b == sub_banks[0] for b in sub_banks)
        start += len(terms)
    # reproducible with the same generator seed, different for another seed
    again, _, _ = run(world, recorder, hypothesis, reference_bank_aliasing=aliasing, num_negatives=kept,
                      generator=torch.Generator().manual_seed(123))
    assert torch.equal(loss, again)
    other, _, _ = run(world, recorder, hypothesis, reference_bank_aliasing=aliasing, num_negatives=kept,
                      generator=torch.Generator().manual_seed(7))
    assert not torch.equal(loss, other)


def test_num_negatives_uses_global_rng_without_generator():
    world = World(3, seed=50)
    torch.manual_seed(0)
    state = torch.get_rng_state()
    a, _ = gdt_loss(world.views, 6, gather=world.gather, num_negatives=3)
    assert not torch.equal(torch.get_rng_state(), state)  # the global RNG was used
    torch.manual_seed(0)
    b, _ = gdt_loss(world.views, 6, gather=world.gather, num_negatives=3)
    assert torch.equal(a, b)
    full, _ = gdt_loss(world.views, 6, gather=world.gather)
    assert not torch.allclose(a, full)  # the bank really shrank


@pytest.mark.parametrize("hypothesis", [1, 5, 8])
def test_num_negatives_bounds(recorder, hypothesis):
    world = World(2, seed=60)
    full, _ = gdt_loss(world.views, hypothesis, gather=world.gather)
    # as many or more than the bank holds: identical to keeping all, and no random draw
    state = torch.get_rng_state()
    big, _ = gdt_loss(world.views, hypothesis, gather=world.gather, num_negatives=1000)
    assert torch.equal(full, big) and torch.equal(torch.get_rng_state(), state)
    # zero: only the local in-batch negatives remain
    _, _, rec = run(world, recorder, hypothesis, num_negatives=0)
    for _, _, _, bank, _ in rec:
        assert all(r == 0 for _, r, _ in bank)
    # one process: nothing to subsample
    single = World(1, seed=61)
    a, _ = gdt_loss(single.views, hypothesis, gather=single.gather)
    b, _ = gdt_loss(single.views, hypothesis, gather=single.gather, num_negatives=1)
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="num_negatives"):
        gdt_loss(world.views, hypothesis, gather=world.gather, num_negatives=-2)


# ------------------------------------------------------------------------------------------------------------------
# Config / module
# ------------------------------------------------------------------------------------------------------------------
def test_module_from_cfg_reads_all_gdt_keys(recorder):
    cfg = get_cfg()
    cfg.GDT.HYPOTHESIS = "i_reversal"
    cfg.GDT.TEMPERATURE = 0.1
    cfg.GDT.NUM_NEGATIVES = 3
    cfg.GDT.REFERENCE_BANK_ALIASING = True
    m = GDTNCELoss.from_cfg(cfg)
    assert (m.hypothesis, m.temperature, m.num_negatives, m.reference_bank_aliasing) == (3, 0.1, 3, True)
    assert m.views == ("orig", "rev")
    world = World(3, seed=70)
    m.gather = world.gather
    torch.manual_seed(1)
    loss, stats = m(world.views)
    torch.manual_seed(1)
    expected, _ = gdt_loss(world.views, 3, 0.1, gather=world.gather, num_negatives=3, reference_bank_aliasing=True)
    assert torch.equal(loss, expected)
    assert set(stats) == {"nce_acc", "loss/base-orig-rev", "loss/inv-orig-rev"}
    # the gathered part of every bank was cut to 3 rows
    assert all(sum(r > 0 for _, r, _ in world.label(torch.cat(c.bank))) == 3 for c in recorder[-8:])
    default = GDTNCELoss.from_cfg(get_cfg())
    assert (default.hypothesis, default.num_negatives, default.reference_bank_aliasing) == (1, -1, False)
