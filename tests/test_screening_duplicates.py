import numpy as np
import pandas as pd
import pytest

from arena.screening.duplicates import kept, normalise_prompt, percentile_cap, prompt_key


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Describe this image.", "describe this image"),
        ("describe this image", "describe this image"),
        ("  DESCRIBE   this image!!", "describe this image"),
        ("describe\tthis\n\nimage ?", "describe this image"),
        ("\uff24\uff45\uff53\uff43\uff52\uff49\uff42\uff45 this image", "describe this image"),
        ("\u201cWhat\u2019s this?\u201d", "what's this"),
        ("\u00bfQu\u00e9 es esto?", "qu\u00e9 es esto"),
        ("\u00bfQue\u0301 es esto?", "qu\u00e9 es esto"),  # decomposed accent: NFKC composes it
        ("Stra\u00dfe", "strasse"),
        ("\ufeffcount\u00adthe\u200b cats", "countthe cats"),  # format characters dropped
        ("Count the cats - all of them", "count the cats - all of them"),
        ("Count the cats \u2014 all of them", "count the cats - all of them"),
        ("What is 2+2?", "what is 2+2"),
        ("What is 2+3?", "what is 2+3"),  # digits are kept
        ("Describe the images.", "describe the images"),  # no stemming
        ("Is it red, or blue?", "is it red, or blue"),  # punctuation inside stays
        ("...", ""),
        ("", ""),
    ],
)
def test_normalise_prompt_removes_trivial_differences_only(text, expected):
    assert normalise_prompt(text) == expected


SHA = "ab" * 32


def test_prompt_key_is_a_fixed_digest_so_a_change_to_it_is_caught():
    # Stored on every battle: if this literal has to change, bump KEY_LABEL and migrate.
    assert prompt_key("Describe this image.", SHA) == "897c38630184e9691a21cdaad2991988"
    assert prompt_key("Describe this image.", None) == "e967f50207fbb35deaa21e4ce4b6181e"


@pytest.mark.parametrize(
    ("first", "second", "same"),
    [
        (("Describe this image.", SHA), ("  DESCRIBE this image!", SHA), True),
        (("Describe this image.", SHA), ("Describe this image.", SHA.upper()), True),
        (("Describe this image.", None), ("Describe this image.", ""), True),
        (("Describe this image.", SHA), ("Describe this image.", "cd" * 32), False),
        (("Describe this image.", SHA), ("Describe this image.", None), False),
        (("What is 2+2?", SHA), ("What is 2+3?", SHA), False),
        (("a\0b", SHA), ("ab", SHA), True),  # no NUL in a prompt: the parts stay apart
        (("a", "\0b"), ("a\0", "b"), False),
    ],
)
def test_prompt_key_is_equal_exactly_for_the_same_prompt_on_the_same_image(first, second, same):
    assert (prompt_key(*first) == prompt_key(*second)) is same


def ids_for(n: int, prefix: str = "battle") -> list[str]:
    return [f"{prefix}-{i}" for i in range(n)]


def test_keys_at_or_under_the_cap_are_untouched():
    keys = np.array([0, 0, 1, 1, 1, 2])
    assert kept(keys, ids_for(6), cap=3).all()


@pytest.mark.parametrize("cap", [1, 3, 10])
def test_keys_over_the_cap_keep_exactly_cap_battles(cap):
    rng = np.random.default_rng(cap)
    keys = rng.integers(0, 20, 500)
    mask = kept(keys, ids_for(500), cap=cap)
    counts = np.bincount(keys, minlength=20)
    assert np.bincount(keys[mask], minlength=20).tolist() == np.minimum(counts, cap).tolist()


@pytest.mark.parametrize("cap", [0, -1])
def test_a_cap_of_zero_or_less_keeps_everything(cap):
    assert kept(np.zeros(50, dtype=np.int64), ids_for(50), cap=cap).all()


def test_kept_is_a_fixed_choice_so_a_change_to_the_hash_is_caught():
    keys = np.zeros(6, dtype=np.int64)
    assert np.flatnonzero(kept(keys, ids_for(6), cap=2, seed=0)).tolist() == [2, 3]
    assert np.flatnonzero(kept(keys, ids_for(6), cap=2, seed=1)).tolist() == [0, 1]


def test_kept_depends_on_the_battles_not_on_their_order():
    rng = np.random.default_rng(0)
    keys, ids = rng.integers(0, 5, 300), ids_for(300)
    chosen = {i for i, k in zip(ids, kept(keys, ids, cap=4), strict=True) if k}
    order = rng.permutation(300)
    shuffled_ids = [ids[i] for i in order]
    mask = kept(keys[order], shuffled_ids, cap=4)
    assert {i for i, k in zip(shuffled_ids, mask, strict=True) if k} == chosen
    assert kept(keys, ids, cap=4).tolist() == kept(keys, ids, cap=4).tolist()


def test_different_seeds_keep_different_battles():
    keys = np.zeros(200, dtype=np.int64)
    assert (
        kept(keys, ids_for(200), 10, seed=0).tolist()
        != kept(keys, ids_for(200), 10, seed=1).tolist()
    )


@pytest.mark.parametrize("seed", range(5))
def test_one_more_battle_changes_at_most_one_kept_battle(seed):
    rng = np.random.default_rng(seed)
    keys = rng.integers(0, 3, 60)
    ids = ids_for(60, prefix=f"s{seed}")
    before = kept(keys, ids, cap=10, seed=seed)
    for new_key in range(3):
        after = kept(np.r_[keys, new_key], [*ids, "the-new-one"], cap=10, seed=seed)
        dropped = int((before & ~after[:-1]).sum())
        assert (before | after[:-1]).tolist() == before.tolist()  # no old battle comes back
        assert dropped == int(after[-1]) and dropped <= 1  # one in, one out, or nothing


def test_kept_of_no_battles_is_empty_and_a_length_mismatch_is_refused():
    assert kept(np.array([], dtype=np.int64), [], cap=10).tolist() == []
    with pytest.raises(ValueError, match="one code per battle id"):
        kept(np.zeros(3, dtype=np.int64), ids_for(2), cap=1)


@pytest.mark.parametrize(
    ("counts", "q", "cap"),
    [
        # 10,000 keys: index (10000 - 1) * 0.9999 = 9998.0001, between 1 and 100: 1.0099.
        ([1] * 9_999 + [100], 99.99, 1),
        # 1..10001: index 10000 * 0.9999 = 9999 exactly, the count 10000 (no 9999.999 floor).
        (list(range(1, 10_002)), 99.99, 10_000),
        ([1, 2, 3, 4], 50, 2),  # index 1.5: 2.5, rounded down
        ([3, 0, 5], 50, 4),  # keys with no battles are left out: 3 and 5
        ([7, 7, 7], 99.99, 7),
        ([1, 1, 1, 1000], 100, 1000),
        ([], 99.99, 0),  # nothing to cap
    ],
)
def test_percentile_cap_is_the_floor_of_the_percentile_over_keys(counts, q, cap):
    assert percentile_cap(np.array(counts), q) == cap


@pytest.mark.parametrize("seed", range(3))
def test_percentile_cap_matches_fastchat_value_counts_quantile(seed):
    """FastChat deduplication.py: cutoff = prompt_counts.quantile(0.9999); n=int(cutoff)."""
    rng = np.random.default_rng(seed)
    # About 95,000 prompts, most asked a few times, a few hundreds or thousands of times.
    prompts = pd.Series(np.r_[rng.integers(0, 100_000, 300_000), rng.zipf(1.5, 20_000)])
    prompt_counts = prompts.value_counts()
    assert percentile_cap(prompt_counts.to_numpy()) == int(prompt_counts.quantile(0.9999))


@pytest.mark.parametrize("q", [0, -1, 100.5])
def test_percentile_cap_refuses_a_percentile_outside_0_to_100(q):
    with pytest.raises(ValueError, match="percentile between 0 and 100"):
        percentile_cap(np.array([1, 2]), q)
