"""Battles: pick a pair, run both sides at once, store the turns and the one vote.

sides   SideResult, the "answer finished" rule, side labels and name masking (a leaf module)
flow    Battle, pick_models, ask, regenerate: both models answering at the same time
record  start, save_turn, cast_vote: the battle written through the store
"""

from arena.battle.flow import Battle, Event, ask, pick_models, regenerate, run_sides
from arena.battle.record import cast_vote, save_turn, start
from arena.battle.sides import SIDES, SideResult, answer_finished

__all__ = [
    "SIDES",
    "Battle",
    "Event",
    "SideResult",
    "answer_finished",
    "ask",
    "cast_vote",
    "pick_models",
    "regenerate",
    "run_sides",
    "save_turn",
    "start",
]
