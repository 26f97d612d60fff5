"""Per-image name retrieval (the emoji arena's judge) against R-precision's definition."""

import pytest
import torch

from atelier.eval.clip_metrics import pool_text_embeddings, r_precision, retrieval_hits


class OneHot:
    """A fake CLIP: image i embeds as axis ``owner[i]``; text j as axis j of the pool."""

    image_size = 8

    def __init__(self, pool, owner):
        self.pool, self.owner = pool, owner

    def encode_image(self, x):
        return torch.nn.functional.one_hot(
            torch.as_tensor(self.owner[: len(x)]), len(self.pool)
        ).float()

    def encode_text(self, texts):
        return torch.nn.functional.one_hot(
            torch.as_tensor([self.pool.index(t) for t in texts]), len(self.pool)
        ).float()


def test_hits_follow_the_embedding_and_name_the_winner():
    pool = [f"name {k}" for k in range(5)]
    images = torch.zeros(3, 3, 8, 8)
    clip = OneHot(pool, owner=[0, 1, 4])  # the third image looks like "name 4"
    hits = retrieval_hits(clip, images, ["name 0", "name 1", "name 2"], pool=pool,
                          keys=["a", "b", "c"])  # fmt: skip
    assert [h for h, _ in hits] == [True, True, False]
    assert hits[2][1] == "name 4"  # all 4 others are candidates: the winner is known
    assert r_precision(clip, images, ["name 0", "name 1", "name 2"]).value == pytest.approx(2 / 3)


def test_candidates_depend_on_the_key_not_on_the_batch():
    pool = [f"name {k}" for k in range(300)]
    owner = list(range(0, 300, 7))
    clip = OneHot(pool, owner=owner)
    texts = [pool[(o + 1) % 300] for o in owner]  # every image looks like another name
    keys = [f"job-{k}" for k in range(len(owner))]
    images = torch.zeros(len(owner), 3, 8, 8)
    whole = retrieval_hits(clip, images, texts, pool=pool, keys=keys)
    assert not any(h for h, _ in whole)
    given = pool_text_embeddings(clip, pool)  # encoded once by a caller: the same verdicts
    assert retrieval_hits(clip, images, texts, pool=pool, keys=keys, pool_embeddings=given) == whole
    # Judged alone, each job meets the same 99 candidates: the same winner name.
    for k in (0, 5, len(owner) - 1):
        single = OneHot(pool, owner=[owner[k]])
        (one,) = retrieval_hits(single, images[:1], [texts[k]], pool=pool, keys=[keys[k]])
        assert one == whole[k]
    with pytest.raises(ValueError, match="not in the pool"):
        retrieval_hits(clip, images[:1], ["elsewhere"], pool=pool, keys=["k"])
