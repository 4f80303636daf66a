import math
from fractions import Fraction

import numpy as np
import pytest

from arena.errors import RatingsError
from arena.screening import voters
from arena.screening.voters import NO_VOTER, VoterTest, decisive_votes, sequential_test


def run(votes: list[tuple[int, int, int]], **options) -> VoterTest:
    """sequential_test over (voter, winner, loser) triples in time order."""
    voter, winner, loser = (np.array(x, dtype=np.int64) for x in zip(*votes, strict=True))
    return sequential_test(voter, winner, loser, **options)


def log_product(*shares: Fraction) -> float:
    return sum(-math.log(2 * p) for p in shares)


def background(winner_share: float, n: int = 10_000) -> list[tuple[int, int, int]]:
    """n anonymous votes on models 0 and 1, the first winner_share of them won by model 0."""
    wins = round(winner_share * n)
    return [(NO_VOTER, 0, 1)] * wins + [(NO_VOTER, 1, 0)] * (n - wins)


@pytest.mark.parametrize(
    ("votes", "expected"),
    [
        # Pair 0-1: model 0 wins 2 of 3, so voter 0's p is 2/3 and voter 1's are 2/3 and 1/3.
        (
            [(0, 0, 1), (1, 0, 1), (1, 1, 0)],
            {0: log_product(Fraction(2, 3)), 1: log_product(Fraction(2, 3), Fraction(1, 3))},
        ),
        # Two pairs count apart: pair 0-1 has 0 winning 1 of 2, pair 1-2 has 2 winning 1 of 1.
        (
            [(0, 0, 1), (1, 1, 0), (0, 2, 1)],
            {0: log_product(Fraction(1, 2), Fraction(1, 1)), 1: log_product(Fraction(1, 2))},
        ),
        # Anonymous votes count in the shares: voter 2's one vote is 1 of 4 on its pair.
        (
            [(NO_VOTER, 1, 0), (2, 0, 1), (NO_VOTER, 1, 0), (NO_VOTER, 1, 0)],
            {0: 0.0, 1: 0.0, 2: log_product(Fraction(1, 4))},
        ),
        # Every vote on a pair the same way: p = 1, each vote halves M.
        ([(0, 3, 4)] * 3, {0: 3 * -math.log(2)}),
    ],
)
def test_log_statistic_is_the_sum_of_minus_log_2p_with_shares_over_everyones_votes(votes, expected):
    result = run(votes)
    assert dict(enumerate(result.log_statistic.tolist())) == pytest.approx(expected)


def test_the_same_model_winning_from_either_side_goes_the_same_way():
    voter = np.array([0, 1, 2])
    model_a, model_b = np.array([0, 1, 0]), np.array([1, 0, 1])
    # Model 0 wins on the left (voter 0) and on the right (voter 1); voter 2 picks model 1.
    result = sequential_test(*decisive_votes(voter, model_a, model_b, ["a", "b", "b"]))
    shares = [Fraction(2, 3), Fraction(2, 3), Fraction(1, 3)]
    assert result.log_statistic.tolist() == pytest.approx([log_product(p) for p in shares])


def test_a_voter_always_against_the_consensus_is_flagged():
    contrarian = [(7, 1, 0)] * 10  # model 0 wins 90 % of everyone else's votes
    result = run(background(0.9) + contrarian)
    assert result.flagged_codes().tolist() == [7]
    assert result.votes[7] == 10
    assert result.log_statistic[7] > result.threshold


def test_a_voter_with_the_consensus_is_not_flagged_and_the_statistic_falls():
    result = run(background(0.9) + [(7, 0, 1)] * 100)
    assert not result.flagged.any()
    assert result.log_statistic[7] < 0


def bt_votes(voters: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Honest voters: 20-50 votes each on random pairs of 8 models, outcomes drawn from a
    Bradley-Terry model, all voters' votes shuffled into one time order."""
    rng = np.random.default_rng(seed)
    strength = rng.normal(0, 1.2, 8)
    voter = np.repeat(np.arange(voters), rng.integers(20, 51, voters))
    rng.shuffle(voter)
    a = rng.integers(0, 8, voter.size)
    b = (a + rng.integers(1, 8, voter.size)) % 8
    a_wins = rng.random(voter.size) < 1 / (1 + np.exp(strength[b] - strength[a]))
    return voter, np.where(a_wins, a, b), np.where(a_wins, b, a)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_honest_voters_are_flagged_at_most_at_the_nominal_rate(seed):
    result = sequential_test(*bt_votes(2_000, seed))
    assert result.votes.min() >= 20
    assert result.flagged.mean() <= 0.05
    assert result.ever_crossed.mean() <= 0.05  # Ville: crossing at any time is rare too


def test_honest_voters_are_flagged_more_often_with_a_looser_alpha():
    votes = bt_votes(2_000, seed=0)
    strict, loose = sequential_test(*votes), sequential_test(*votes, alpha=0.5)
    assert loose.flagged.sum() > strict.flagged.sum()


@pytest.mark.parametrize("count", [1, 2, 3, 4])
def test_fewer_than_min_votes_decisive_votes_are_never_flagged(count):
    votes = background(0.999) + [(0, 1, 0)] * count  # p about 1/1000: M is huge already
    assert not run(votes).flagged.any()
    assert run(votes, min_votes=count).flagged_codes().tolist() == [0]


def test_only_the_first_100_decisive_votes_count():
    honest_then_adversarial = background(0.9) + [(0, 0, 1)] * 100 + [(0, 1, 0)] * 200
    result = run(honest_then_adversarial)
    assert result.votes[0] == 100
    assert not result.flagged[0] and not result.ever_crossed[0]
    assert run(honest_then_adversarial, first=300).flagged[0]  # all 300 would flag


def test_a_product_that_crossed_early_but_ends_below_is_reported_not_flagged():
    votes = background(0.9) + [(0, 1, 0)] * 10 + [(0, 0, 1)] * 90
    result = run(votes)
    assert result.ever_crossed[0] and not result.flagged[0]
    assert result.log_statistic[0] < result.threshold


def test_anonymous_votes_are_never_flagged():
    votes = background(0.9) + [(NO_VOTER, 1, 0)] * 500 + [(0, 0, 1)] * 5
    result = run(votes)
    assert result.votes.tolist() == [5]
    assert not result.flagged.any()


def test_self_battles_are_left_out_of_shares_and_votes():
    with_self = run([(0, 0, 1), (1, 1, 0), (0, 2, 2), (1, 2, 2)])
    without = run([(0, 0, 1), (1, 1, 0)])
    assert with_self.votes.tolist() == without.votes.tolist() == [1, 1]
    assert with_self.log_statistic.tolist() == without.log_statistic.tolist()


@pytest.mark.parametrize("voters", [None, 3])
def test_empty_input_gives_empty_or_all_clear_results(voters):
    empty = np.array([], dtype=np.int64)
    result = sequential_test(empty, empty, empty, voters=voters)
    size = voters or 0
    assert result.votes.tolist() == [0] * size
    assert result.log_statistic.tolist() == [0.0] * size
    assert result.flagged.tolist() == result.ever_crossed.tolist() == [False] * size
    assert result.flagged_codes().tolist() == []


def test_voters_sizes_the_result_for_codes_without_decisive_votes():
    result = run([(1, 0, 1)], voters=4)
    assert result.votes.tolist() == [0, 1, 0, 0]


def test_the_result_arrays_are_read_only():
    result = run([(0, 0, 1)])
    with pytest.raises(ValueError, match="read-only"):
        result.flagged[0] = True


@pytest.mark.parametrize(
    ("arrays", "options", "message"),
    [
        (([0], [0], [1, 2]), {}, "same length"),
        (([0.5], [0], [1]), {}, "integer codes"),
        (([-2], [0], [1]), {}, ">= -1"),
        (([0], [-1], [1]), {}, ">= -1"),
        (([0], [0], [1]), {"alpha": 1.0}, "alpha"),
        (([0], [0], [1]), {"first": 0}, "at least 1"),
        (([0], [0], [1]), {"min_votes": 0}, "at least 1"),
        (([5], [0], [1]), {"voters": 3}, "out of range"),
    ],
)
def test_bad_input_raises_a_value_error_that_names_the_problem(arrays, options, message):
    with pytest.raises(ValueError, match=message):
        sequential_test(*(np.array(a) for a in arrays), **options)


def test_decisive_votes_drops_ties_and_both_bad_and_takes_either_label():
    outcome = ["a", "tie", "model_b", "bothbad", "tie (bothbad)", "b", "model_a"]
    voter, winner, loser = decisive_votes(np.arange(7), np.full(7, 10), np.full(7, 20), outcome)
    assert voter.tolist() == [0, 2, 5, 6]
    assert winner.tolist() == [10, 20, 20, 10]
    assert loser.tolist() == [20, 10, 10, 20]


def test_decisive_votes_refuses_an_unknown_outcome():
    with pytest.raises(RatingsError, match="'left'.*expected a, b, tie or bothbad"):
        decisive_votes(np.arange(2), np.zeros(2), np.ones(2), ["a", "left"])


def test_the_grouped_test_agrees_with_the_per_vote_test_on_random_votes():
    """The database groups each voter's first 100 decisive votes per (winner, loser); the
    statistic from those groups is the per-vote test's, flag for flag."""
    rng = np.random.default_rng(7)
    n = 20_000
    voter = rng.integers(-1, 300, n)
    a = rng.integers(0, 6, n)
    b = (a + rng.integers(1, 6, n)) % 6
    contrarian = voter % 17 == 0  # a few voters who pick the weaker model
    a_wins = np.where(contrarian, a > b, a < b) ^ (rng.random(n) < 0.2)
    winner, loser = np.where(a_wins, a, b), np.where(a_wins, b, a)
    per_vote = voters.sequential_test(voter, winner, loser, voters=300)
    # group as SQL does: each voter's first 100, then counts per (voter, winner, loser)
    rank = np.zeros(n, dtype=np.int64)
    seen: dict[int, int] = {}
    for i, v in enumerate(voter.tolist()):
        rank[i] = seen.get(v, 0)
        seen[v] = rank[i] + 1
    groups: dict[tuple[int, int, int], int] = {}
    for v, w, lo, k in zip(
        voter.tolist(), winner.tolist(), loser.tolist(), rank.tolist(), strict=True
    ):
        if v >= 0 and k < voters.FIRST:
            groups[v, w, lo] = groups.get((v, w, lo), 0) + 1
    same = {}
    for w, lo in zip(winner.tolist(), loser.tolist(), strict=True):
        same[w, lo] = same.get((w, lo), 0) + 1
    keys = list(groups)
    share = [same[w, lo] / (same[w, lo] + same.get((lo, w), 0)) for _, w, lo in keys]
    grouped = voters.grouped_test(
        np.array([k[0] for k in keys]), np.array([groups[k] for k in keys]), share, voters=300
    )
    assert np.array_equal(grouped.flagged, per_vote.flagged)
    assert np.array_equal(grouped.votes, per_vote.votes)
    assert np.allclose(grouped.log_statistic, per_vote.log_statistic)
    assert per_vote.flagged.any() and not per_vote.flagged.all()


@pytest.mark.parametrize("share", [0.0, -0.1, 1.5])
def test_the_grouped_test_refuses_shares_outside_zero_to_one(share):
    with pytest.raises(ValueError, match="shares"):
        voters.grouped_test(np.array([0]), np.array([5]), np.array([share]))
