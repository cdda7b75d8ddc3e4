"""A visual memory: classification as nearest-neighbour search in an editable database of embeddings.

Geirhos, Jaini, Stone, Medapati, Yi, Toderici, Ogale and Shlens 2024, "Towards flexible perception with
visual memory" (arXiv:2408.08172). Image classification is split into similarity (a fixed embedding)
and search (k nearest neighbours, by cosine similarity, in a memory of labelled embeddings); the label
is a weighted vote over the neighbours:

- RankVoting: the neighbour of rank r = 1, 2, ..., k votes for its label with a weight that falls with
  its rank; the form used here is w_r = 1 / (alpha + r), alpha = 2;
- SoftmaxVoting: w = exp(similarity / temperature), normalised.

Knowledge then lives in the database, not in weights: a class is added by inserting its examples
(Table 1), and samples are removed ("unlearned") by deleting them, with no training. The
memory here is a `Memory` of keys [M, E] (unit rows), labels [M] and ids [M], edited by pure functions.

The toy (`visual_memory_experiment`): glyph images (`course.data.glyph_images`: 4 glyphs at 4 places,
with noise) embedded by fixed random ReLU features; the memory first holds three glyph classes, then the
fourth is inserted; then a quarter of the memory is deleted. The new class's accuracy and the old
classes' accuracy before and after are measured (a reproduction: it could have come out otherwise); that
the deleted samples' influence is gone (every vote score equal to that of a memory built from scratch
without them) holds by construction, a demonstration. The baseline is what a network with the knowledge in its
weights must do instead: retrain its classifier (a linear one on the same embedding), counted in FLOPs.
"""
import functools
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from course.checks import check_int, check_shape, check_tensor
from course.claims import REPRODUCTION, Claim
from course.data import glyph_images
from course.metrics import accuracy
from course.train import fit, one_thread, seeded

CLASSES, NEW_CLASS = 4, 3  # the glyphs; the last is held out of the first memory
EMBED, NOISE, K, ALPHA, TEMPERATURE = 256, 0.5, 10, 2.0, 0.05
PER_CLASS, TEST, DELETED = 60, 400, 0.25  # memory examples per class, test images, fraction deleted
LINEAR_STEPS, LINEAR_LR = 200, 0.1


class Memory(NamedTuple):
    """The database: keys [M, E] (unit rows), labels [M] (int64), ids [M] (int64, unique)."""

    keys: torch.Tensor
    labels: torch.Tensor
    ids: torch.Tensor


def empty_memory(embed: int) -> Memory:
    """A memory with no entries, for keys of `embed` features."""
    check_int("visual_memory.empty_memory", "embed", embed, low=1)
    return Memory(torch.zeros(0, embed), torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long))


def insert(memory: Memory, keys, labels, ids) -> Memory:
    """The memory with entries added (adding data): keys [A, E] (normalised here), labels [A], ids [A]
    (new, unique). -> Memory"""
    where = "visual_memory.insert"
    check_tensor(where, "keys", keys, ndim=2, kind="float")
    check_shape(where, "keys", keys, (keys.shape[0], memory.keys.shape[1]), "[A, E] with the memory's E")
    check_tensor(where, "labels", labels, ndim=1, kind="int")
    check_tensor(where, "ids", ids, ndim=1, kind="int")
    check_shape(where, "labels", labels, (keys.shape[0],), "[A]")
    check_shape(where, "ids", ids, (keys.shape[0],), "[A]")
    if (labels < 0).any():
        raise ValueError(f"{where}: `labels` must be >= 0; got {labels.min().item()}.")
    merged = torch.cat([memory.ids, ids.long()])
    if merged.unique().numel() != merged.numel():
        raise ValueError(f"{where}: `ids` must be unique and new to the memory; got "
                         f"{merged.numel() - merged.unique().numel()} repeated.")
    return Memory(torch.cat([memory.keys, F.normalize(keys.float(), dim=1)]),
                  torch.cat([memory.labels, labels.long()]), merged)


def delete(memory: Memory, ids) -> Memory:
    """The memory without the entries of these ids (unlearning); each must be stored. -> Memory"""
    check_tensor("visual_memory.delete", "ids", ids, ndim=1, kind="int")
    found = torch.isin(ids, memory.ids)
    if not found.all():
        raise ValueError(f"visual_memory.delete: `ids` must all be in the memory; got "
                         f"{(~found).sum().item()} not stored (e.g. {ids[~found][0].item()}).")
    keep = ~torch.isin(memory.ids, ids)
    return Memory(memory.keys[keep], memory.labels[keep], memory.ids[keep])


def neighbours(memory: Memory, queries, k: int):
    """The k nearest stored keys of each query by cosine similarity, best first. queries [N, E] ->
    similarities [N, k'], indices [N, k'] with k' = min(k, M)"""
    check_tensor("visual_memory.neighbours", "queries", queries, ndim=2, kind="float")
    check_int("visual_memory.neighbours", "k", k, low=1)
    if memory.keys.shape[0] == 0:
        raise ValueError("visual_memory.neighbours: the memory must hold at least one entry; got none.")
    check_shape("visual_memory.neighbours", "queries", queries, (queries.shape[0], memory.keys.shape[1]),
                "[N, E] with the memory's E")
    sims = F.normalize(queries.float(), dim=1) @ memory.keys.T  # [N, M]
    return sims.topk(min(k, memory.keys.shape[0]), dim=1)


def rank_vote(labels, classes: int, alpha: float = ALPHA):
    """RankVoting: class scores sum_r [label_r = c] / (alpha + r), r = 1..k. labels [N, k] -> [N, C]"""
    weights = 1.0 / (alpha + torch.arange(1, labels.shape[1] + 1, dtype=torch.float32))
    return torch.zeros(labels.shape[0], classes).scatter_add_(1, labels, weights.expand(labels.shape))


def softmax_vote(similarities, labels, classes: int, temperature: float = TEMPERATURE):
    """SoftmaxVoting: class scores sum_r [label_r = c] exp(s_r / T), normalised. [N, k] x2 -> [N, C]"""
    weights = (similarities / temperature).softmax(1)
    return torch.zeros(labels.shape[0], classes).scatter_add_(1, labels, weights)


def classify(memory: Memory, queries, k: int = K, classes: int = CLASSES, voting: str = "rank"):
    """Class scores [N, C] of queries [N, E] from their k nearest neighbours' labels."""
    if voting not in ("rank", "softmax"):
        raise ValueError(f"visual_memory.classify: `voting` must be 'rank' or 'softmax'; got {voting!r}.")
    sims, idx = neighbours(memory, queries, k)
    labels = memory.labels[idx]
    return rank_vote(labels, classes) if voting == "rank" else softmax_vote(sims, labels, classes)


def random_features(seed: int, embed: int = EMBED):
    """A fixed embedding: ReLU(W x) for flattened 8 x 8 images, W [E, 64] Gaussian. -> function"""
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(embed, 64, generator=g) / 8

    def embed_images(images):
        return F.relu(images.reshape(images.shape[0], -1) @ W.T)

    return embed_images


def glyphs(n: int, seed: int, classes):
    """n noisy glyph images whose glyph is one of `classes`. -> images [n, 8, 8], glyph [n]"""
    images, what, _ = glyph_images(8 * n + 64, NOISE, seed)
    keep = torch.isin(what, torch.as_tensor(classes)).nonzero()[:n, 0]
    if len(keep) < n:
        raise ValueError(f"visual_memory.glyphs: drew only {len(keep)} images of classes {classes}; "
                         f"`n` = {n} asked for more.")
    return images[keep], what[keep]


def linear_retraining(train_x, train_y, seed: int):
    """The baseline's update: a linear classifier on the embeddings, trained from scratch, and the FLOPs
    its training took (torch's FlopCounterMode). -> (weights, flops)"""
    with seeded(seed):
        layer = torch.nn.Linear(train_x.shape[1], CLASSES)
    with FlopCounterMode(display=False) as counter:
        fit(layer.parameters(), lambda: F.cross_entropy(layer(train_x), train_y), LINEAR_STEPS, LINEAR_LR,
            seed=seed, desc="linear")
    return layer, counter.get_total_flops()


@functools.lru_cache(maxsize=3)
@one_thread()
def visual_memory_experiment(seed: int) -> dict:
    """Add a class by insertion, delete a quarter of the memory; the same edits by retraining."""
    embed = random_features(seed)
    old_classes = [c for c in range(CLASSES) if c != NEW_CLASS]
    old_x, old_y = glyphs(PER_CLASS * len(old_classes), seed, old_classes)
    new_x, new_y = glyphs(PER_CLASS, seed + 1000, [NEW_CLASS])
    test_x, test_y = glyphs(TEST, seed + 2000, list(range(CLASSES)))
    test_e, is_new = embed(test_x), test_y == NEW_CLASS
    memory = insert(empty_memory(EMBED), embed(old_x), old_y, torch.arange(len(old_y)))
    before = classify(memory, test_e)
    with FlopCounterMode(display=False) as counter:
        new_e = embed(new_x)
        memory = insert(memory, new_e, new_y, len(old_y) + torch.arange(len(new_y)))
    after = classify(memory, test_e)
    out = {"old_accuracy_before": accuracy(before[~is_new], test_y[~is_new]),
           "old_accuracy_after": accuracy(after[~is_new], test_y[~is_new]),
           "new_class_accuracy": accuracy(after[is_new], test_y[is_new]),
           "accuracy_after_insert": accuracy(after, test_y),
           "insert_flops": float(counter.get_total_flops())}
    out["old_accuracy_change"] = abs(out["old_accuracy_after"] - out["old_accuracy_before"])
    g = torch.Generator().manual_seed(seed)
    gone = memory.ids[torch.randperm(len(memory.ids), generator=g)[:int(DELETED * len(memory.ids))]]
    pruned = delete(memory, gone)
    all_e, all_y = torch.cat([embed(old_x), new_e]), torch.cat([old_y, new_y])  # in memory order
    keep = ~torch.isin(memory.ids, gone)
    rebuilt = insert(empty_memory(EMBED), all_e[keep], all_y[keep], memory.ids[keep])  # from scratch
    scores = classify(pruned, test_e)
    out["deletion_mismatch"] = (scores != classify(rebuilt, test_e)).sum().item()
    out["deleted_still_stored"] = torch.isin(gone, pruned.ids).sum().item()
    out["predictions_changed_by_deletion"] = (scores.argmax(1) != after.argmax(1)).float().mean().item()
    out["accuracy_after_deletion"] = accuracy(scores, test_y)
    layer, flops = linear_retraining(all_e, all_y, seed)
    with torch.no_grad():
        out["linear_accuracy"] = accuracy(layer(test_e), test_y)
    out["retrain_flops"] = float(flops + 2 * all_e.numel() * 64)  # + the embedding of every sample
    out["retrain_over_insert_flops"] = out["retrain_flops"] / max(out["insert_flops"], 1.0)
    return out


CLAIM = Claim(
    paper="Geirhos et al. 2024",
    citation="Towards flexible perception with visual memory (arXiv:2408.08172): adding "
             "new classes (Table 1) and unlearning by removing samples",
    statement="a kNN visual memory learns a new class by inserting its examples, without training: the "
              "new class is recognised and the old classes' accuracy is unchanged; removing samples from "
              "the memory removes their influence exactly (a demonstration by construction), where a "
              "classifier with the knowledge in its weights must be retrained",
    kind=REPRODUCTION,
    experiment=visual_memory_experiment,
    thresholds=("new_class_accuracy >= 0.9", "old_accuracy_change <= 0.02", "deletion_mismatch == 0",
                "deleted_still_stored == 0", "retrain_over_insert_flops >= 10"),
    summary=lambda m: (
        f"after inserting a new glyph class: its accuracy {m['new_class_accuracy']:.3f}, the old classes' "
        f"{m['old_accuracy_before']:.3f} -> {m['old_accuracy_after']:.3f}; after deleting "
        f"{DELETED:.0%} of the memory, {m['deletion_mismatch']} vote scores differ from a memory built "
        f"without them ({m['predictions_changed_by_deletion']:.1%} of predictions changed by the "
        f"deletion); on all four classes the memory reaches {m['accuracy_after_insert']:.3f}, a linear "
        f"classifier retrained on the same embedding {m['linear_accuracy']:.3f} for "
        f"{m['retrain_over_insert_flops']:.0f} times the insertion's FLOPs"),
    held_on=(),
    note="Holds on no seed. The deletion half holds by construction on every seed (no vote score differs, "
         "no deleted entry is left; it is a demonstration inside this reproduction), and inserting costs "
         "about 100 times fewer FLOPs than retraining the linear classifier, which ends below the memory "
         "(0.73, 0.745, 0.72 against 0.81, 0.81, 0.79). But the inserted glyph, L, whose pixels are a "
         "subset of O's, is recognised at 0.77, 0.78, 0.72 (under the 0.9 set in advance), and inserting "
         "it costs the old classes 0.076, 0.064, 0.11 of accuracy (over 0.02): noisy O images now find L "
         "neighbours. Here the new class is not apart from the old ones, as the paper's NINCO classes are "
         "from ImageNet's. Fixed random ReLU features of 8 x 8 glyph images stand in for the paper's "
         "DinoV2 / CLIP embeddings, and a memory of a few hundred entries for ImageNet and JFT.",
)
