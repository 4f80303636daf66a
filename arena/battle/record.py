"""A battle written through the store: its slot when it starts, each answered turn, its one vote."""

from __future__ import annotations

from concurrent.futures import Future

from arena.battle.flow import Battle
from arena.categories import READS_IMAGE, RULES, labelled
from arena.categories.labeller import Labeller
from arena.errors import InputError
from arena.kinds import Mode, Outcome, Requester
from arena.samples import sample_shas
from arena.screening.duplicates import prompt_key
from arena.screening.leaks import find_leak, identity_terms
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


def save_turn(store: Store, battle: Battle, labeller: Labeller | None = None) -> Future | None:
    """Store the turn just answered: the first, a follow-up, or a regenerated last turn; then
    what the screening finds in the battle so far (its categories, prompt key, identity leak),
    and with a classifier model configured, ask it for the categories in the background (the
    Future of that, else None)."""
    if battle.battle_id is None:
        raise InputError("Start the battle (record.start) before storing its answers.")
    result_a, result_b = battle.results[-1]
    if battle.replace_last:
        store.replace_last_turn(battle.battle_id, result_a, result_b)
    else:
        store.add_turn(battle.battle_id, battle.prompts[-1], result_a, result_b)
    battle.unsaved = False
    labeller = labeller or Labeller.from_settings(store.settings)
    screen_turn(store, battle, labeller)
    return labeller.later(store, battle.battle_id, tuple(battle.prompts), battle.image)


def screen_turn(store: Store, battle: Battle, labeller: Labeller) -> None:
    """Store the battle's prompt key, categories from the rules, and identity-leak verdict."""
    prompts = battle.prompts
    sample = battle.image.sha256 in sample_shas()
    tasks = labeller.rules.classify(prompts)
    leak = None
    if battle.mode is Mode.ANONYMOUS:
        leak = find_leak(
            prompts,
            answers_a=battle.answers("a"),
            answers_b=battle.answers("b"),
            terms_a=identity_terms(battle.spec_a),
            terms_b=identity_terms(battle.spec_b),
            reads_image=any(t in READS_IMAGE for t in tasks),
        )
    store.screen_battle(
        battle.battle_id,
        prompt_key=prompt_key(prompts[0], battle.image.sha256),
        identity_leak=leak,
        categories=labelled(tasks, RULES, prompts, sample),
    )


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
