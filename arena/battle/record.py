"""A battle written through the store: its slot when it starts, each answered turn, its one vote."""

from __future__ import annotations

from arena.battle.flow import Battle
from arena.errors import InputError
from arena.kinds import Outcome, Requester
from arena.store import Store


def start(store: Store, battle: Battle, requester: Requester) -> None:
    """Take the battle's slot before any model runs (RateLimited when a limit is full)."""
    if battle.battle_id is not None:
        raise InputError("This battle has started already.")
    _require_login(store, requester)
    battle.battle_id = store.start_battle(
        mode=battle.mode,
        model_a=battle.spec_a.id,
        model_b=battle.spec_b.id,
        image=battle.image,
        requester=requester,
    )


def save_turn(store: Store, battle: Battle) -> None:
    """Store the turn just answered: the first, a follow-up, or a regenerated last turn."""
    if battle.battle_id is None:
        raise InputError("Start the battle (record.start) before storing its answers.")
    result_a, result_b = battle.results[-1]
    if battle.replace_last:
        store.replace_last_turn(battle.battle_id, result_a, result_b)
    else:
        store.add_turn(battle.battle_id, battle.prompts[-1], result_a, result_b)
    battle.unsaved = False


def cast_vote(store: Store, battle: Battle, outcome: Outcome, requester: Requester) -> None:
    """Store the battle's one vote; the names may be shown afterwards."""
    if not battle.can_vote:
        raise InputError("Both answers must finish without error before a vote.")
    _require_login(store, requester)
    store.record_vote(battle.battle_id, Outcome(outcome), requester)
    battle.outcome = Outcome(outcome)


def _require_login(store: Store, requester: Requester) -> None:
    if getattr(store.settings, "require_login", False) and not requester.logged_in:
        raise InputError("This arena needs you to log in before you battle or vote.")
