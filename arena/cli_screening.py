"""Command-line verbs of the screening: classify prompts into categories, re-check identity leaks.

Both walk the stored battles in pages of BATCH, with a progress bar on stderr, and write each
page in one transaction, so an interrupted run keeps what it finished.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from arena.categories import RULES
from arena.cli_data import _store
from arena.config import Settings
from arena.errors import InputError

BATCH = 500


def cmd_classify(args) -> int:
    from arena.categories import OTHER

    settings = Settings.from_env()
    if args.evaluate:
        return _evaluate(args, settings)
    if args.prompt is None and not args.all:
        raise InputError("classify needs --prompt TEXT, --all or --evaluate FILE.")
    if args.prompt is not None:
        if not args.prompt.strip():
            raise InputError("--prompt is empty: give the prompt to classify.")
        found = _classifier(args, settings).classify([args.prompt], None)
        found = list(found) or [OTHER]
        print(json.dumps(found) if args.json else "\n".join(found))
        return 0
    return _classify_all(args, settings)


class _RulesOnly:
    """The rules behind the classifier's interface (what `classify` calls either)."""

    source = RULES

    def __init__(self, rules):
        self.rules = rules

    def classify(self, prompts, image):
        return self.rules.classify(prompts)


def _classifier(args, settings):
    from arena.categories.labeller import Labeller

    rules = Labeller.from_settings(settings).rules
    if not args.model:
        return _RulesOnly(rules)
    from arena.categories.model import Classifier
    from arena.registry import load_registry

    registry = load_registry(settings.models)
    return Classifier.from_registry(args.model, registry, settings, rules)


def _classify_all(args, settings) -> int:
    from tqdm import tqdm

    from arena.categories import labelled
    from arena.images import check_image
    from arena.samples import sample_shas

    store = _store(settings)
    classifier = _classifier(args, settings)
    labelled_n, skipped, after = 0, 0, None
    try:
        with tqdm(desc="classify", unit=" battles", file=sys.stderr) as bar:
            while page := store.battles_after(after, BATCH):
                after = page[-1][0]
                texts = store.turn_texts([b[0] for b in page])
                labels = {}
                for battle_id, _mode, _a, _b, sha in page:
                    prompts = [p for p, _, _ in texts[battle_id]]
                    if not prompts:  # an imported vote: no prompts; its categories stay
                        skipped += 1
                        continue
                    image = None
                    if args.model and sha:
                        data = store.image_data(sha)
                        image = check_image(data, settings, upload=False).image if data else None
                    tasks = classifier.classify(prompts, image)
                    labels[battle_id] = labelled(
                        tasks, classifier.source, prompts, sha in sample_shas()
                    )
                store.set_categories(labels)
                labelled_n += len(labels)
                bar.update(len(page))
    finally:
        if hasattr(classifier, "close"):
            classifier.close()
    print(
        f"labelled {labelled_n:,} battles with {classifier.source}"
        + (
            f"; {skipped:,} without prompts (imported votes) kept their categories"
            if skipped
            else ""
        )
    )
    return 0


def _evaluate(args, settings) -> int:
    from arena.categories.evaluate import format_table, read_labelled, scores
    from arena.categories.labeller import Labeller

    rows = read_labelled(Path(args.evaluate), split=args.split)
    if not rows:
        raise InputError(f"{args.evaluate}: no rows with split {args.split!r}.")
    print(format_table(scores(Labeller.from_settings(settings).rules, rows)))
    return 0


def cmd_check_leaks(args) -> int:
    from tqdm import tqdm

    from arena.categories import READS_IMAGE
    from arena.registry import load_registry
    from arena.screening.leaks import find_leak, identity_terms

    settings = Settings.from_env()
    registry = load_registry(args.registry or settings.models)
    store = _store(settings)
    terms: dict[str, tuple[str, ...]] = {}

    def terms_of(model_id: str) -> tuple[str, ...]:
        if model_id not in terms:
            terms[model_id] = identity_terms(_spec_or_bare(registry, model_id))
        return terms[model_id]

    checked, flagged, changed, after = 0, 0, 0, None
    with tqdm(desc="check-leaks", unit=" battles", file=sys.stderr) as bar:
        while page := store.battles_after(after, BATCH, anonymous_only=True):
            after = page[-1][0]
            ids = [b[0] for b in page]
            texts, categories = store.turn_texts(ids), store.categories_of(ids)
            verdicts = {}
            for battle_id, _mode, model_a, model_b, _sha in page:
                turns = texts[battle_id]
                if not turns:
                    continue
                verdicts[battle_id] = find_leak(
                    [p for p, _, _ in turns],
                    answers_a=[a for _, a, _ in turns],
                    answers_b=[b for _, _, b in turns],
                    terms_a=terms_of(model_a),
                    terms_b=terms_of(model_b),
                    reads_image=any(c in READS_IMAGE for c in categories[battle_id]),
                )
            changed += store.set_identity_leaks(verdicts)
            checked += len(verdicts)
            flagged += sum(v is not None for v in verdicts.values())
            bar.update(len(page))
    print(
        f"checked {checked:,} anonymous battles: {flagged:,} flagged, {changed:,} verdicts changed"
    )
    return 0


def _spec_or_bare(registry, model_id: str):
    """The registry's entry; for a model no longer in it, one made of its id alone."""
    from arena.errors import RegistryError
    from arena.registry import TransformersSpec

    try:
        return registry.get(model_id)
    except RegistryError:
        return TransformersSpec(id=model_id, model=model_id, backend="transformers")


def add_commands(sub) -> None:
    p = sub.add_parser(
        "classify",
        help="the categories of one prompt (--prompt), of every stored battle (--all), or "
        "the rules' scores on a labelled file (--evaluate)",
    )
    p.add_argument("--prompt", metavar="TEXT", help="print this prompt's categories")
    p.add_argument("--json", action="store_true", help="with --prompt: a JSON list")
    p.add_argument("--all", action="store_true", help="(re)label every stored battle")
    p.add_argument("--model", metavar="ID", help="ask this models.yaml model instead of the rules")
    p.add_argument(
        "--evaluate", metavar="FILE", help="precision, recall and F1 on a labelled JSON lines file"
    )
    p.add_argument("--split", help="with --evaluate: only the rows of this split (e.g. heldout)")
    p.set_defaults(func=cmd_classify)

    p = sub.add_parser(
        "check-leaks",
        help="re-check stored anonymous battles for answers that give a model away "
        "(after models.yaml changes)",
    )
    p.add_argument("--registry", help="models.yaml (default: ARENA_MODELS)")
    p.set_defaults(func=cmd_check_leaks)
