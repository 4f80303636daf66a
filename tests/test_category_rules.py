"""Category rules as data: the shipped rules.yaml on the held-out labelled prompts, every
mistake in a user's rules file as one ConfigError line, user categories, and how a battle's
prompts combine."""

from __future__ import annotations

from pathlib import Path

import pytest

from arena.categories import TASKS
from arena.categories.evaluate import format_table, read_labelled, scores
from arena.categories.rules import SHIPPED, load_rules
from arena.errors import ConfigError

LABELLED = Path(__file__).resolve().parent / "data" / "category_prompts.jsonl"
TARGET_MACRO_F1 = 0.8


@pytest.fixture(scope="module")
def shipped():
    return load_rules()


def write(tmp_path: Path, text: str, name: str = "my_rules.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_the_shipped_rules_reach_the_target_on_the_heldout_prompts(shipped):
    result = scores(shipped, read_labelled(LABELLED, split="heldout"))
    print("\nshipped rules on the held-out split\n" + format_table(result))
    assert result.prompts >= 150
    assert result.macro_f1 >= TARGET_MACRO_F1, format_table(result)


def test_the_shipped_rules_define_the_eight_task_categories_in_order(shipped):
    assert shipped.path == SHIPPED
    assert shipped.categories == TASKS
    for category in TASKS:
        assert shipped.describe(category).strip()


# (b) A user's file: each mistake is one line naming the file, the category and the field.

GOOD_CATEGORY = "  ocr:\n    description: reading text\n    any: [transcribe]\n"

BROKEN = [
    ("not YAML", "categories: [ocr\n", "YAML error at line"),
    (
        "a ? inside a flow list",
        "categories:\n  ocr:\n    description: d\n    any: [pics?, b]\n",
        "quote a pattern with a ? in it",
    ),
    ("not a mapping", "- ocr\n- charts\n", "expected a mapping with a 'categories:' key"),
    ("no categories", "words: {}\n", "field 'categories'"),
    ("empty categories", "categories: {}\n", "field 'categories'"),
    ("unknown top field", "categorys:\n" + GOOD_CATEGORY, "unknown field 'categorys'"),
    (
        "unknown category field",
        "categories:\n  ocr:\n    description: d\n    anything: [x]\n",
        "category 'ocr': unknown field 'anything'",
    ),
    ("upper-case id", "categories:\n  OCR:\n    description: d\n    any: [x]\n", "'OCR'"),
    ("id with a dash", "categories:\n  my-task:\n    description: d\n    any: [x]\n", "'my-task'"),
    ("number as id", "categories:\n  7:\n    description: d\n    any: [x]\n", "category 7"),
    ("reserved id", "categories:\n  other:\n    description: d\n    any: [x]\n", "reserved"),
    (
        "bad regex",
        "categories:\n  ocr:\n    description: d\n    any: [a, b, (c]\n",
        "category 'ocr': any: pattern 3 is not a valid regular expression",
    ),
    (
        "bad regex in unless",
        "categories:\n  ocr:\n    description: d\n    any: [a]\n    unless: ['[z']\n",
        "category 'ocr': unless: pattern 1 is not a valid regular expression",
    ),
    (
        "pattern matching everything",
        "categories:\n  ocr:\n    description: d\n    any: ['x*']\n",
        "any: pattern 1 matches an empty prompt",
    ),
    (
        "empty pattern list",
        "categories:\n  ocr:\n    description: d\n    any: []\n",
        "category 'ocr': any: expected a list of patterns",
    ),
    (
        "empty pattern",
        "categories:\n  ocr:\n    description: d\n    any: [a, '  ']\n",
        "any: pattern 2 is empty",
    ),
    (
        "no patterns at all",
        "categories:\n  ocr:\n    description: d\n    unless: [a]\n",
        "category 'ocr': no patterns",
    ),
    (
        "patterns as one string",
        "categories:\n  ocr:\n    description: d\n    any: transcribe\n",
        "any: expected a list of patterns",
    ),
    (
        "yes read as a boolean",
        "categories:\n  ocr:\n    description: d\n    any: [read, yes]\n",
        "any: pattern 2 is true (yes/no), not text: put it in quotes",
    ),
    (
        "number as pattern",
        "categories:\n  ocr:\n    description: d\n    any: [1]\n",
        "any: pattern 1 is the number 1",
    ),
    (
        "colon and space read as a mapping",
        "categories:\n  ocr:\n    description: d\n    any:\n      - what(?: is) it\n",
        "any: pattern 1 has ': ' in it",
    ),
    ("missing description", "categories:\n  ocr:\n    any: [a]\n", "field 'description'"),
    (
        "description not text",
        "categories:\n  ocr:\n    description: 3\n    any: [a]\n",
        "field 'description'",
    ),
    (
        "category not a mapping",
        "categories:\n  ocr: [a, b]\n",
        "category 'ocr': expected a mapping",
    ),
    (
        "all not a list of groups",
        "categories:\n  ocr:\n    description: d\n    all: read\n",
        "category 'ocr': field 'all'",
    ),
    (
        "all group not a list",
        "categories:\n  ocr:\n    description: d\n    all: [read]\n",
        "category 'ocr': all: group 1: must be a list",
    ),
    (
        "bad regex in an all group",
        "categories:\n  ocr:\n    description: d\n    all: [[read, '(x']]\n",
        "category 'ocr': all: group 1: pattern 2 is not a valid regular expression",
    ),
    (
        "unknown word list",
        "categories:\n  ocr:\n    description: d\n    any: ['read {photo}']\n",
        "any: pattern 1 uses {photo}",
    ),
    ("words not a mapping", "words: [a]\ncategories:\n" + GOOD_CATEGORY, "field 'words'"),
    ("bad word list name", "words:\n  Pic: [a]\ncategories:\n" + GOOD_CATEGORY, "list 'Pic'"),
    (
        "bad regex in a word list",
        "words:\n  pic: [photo, '(']\ncategories:\n" + GOOD_CATEGORY,
        "words: list 'pic': word 2 is not a valid regular expression",
    ),
    (
        "word list using another",
        "words:\n  pic: ['{x}']\ncategories:\n" + GOOD_CATEGORY,
        "cannot use another",
    ),
]


@pytest.mark.parametrize(("case", "text", "message"), BROKEN, ids=[c[0] for c in BROKEN])
def test_each_mistake_in_a_rules_file_is_one_line_naming_the_file_and_the_field(
    tmp_path, case, text, message
):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_rules(path)
    shown = str(caught.value)
    assert "\n" not in shown
    assert shown.startswith(f"{path}: ")
    assert message in shown


def test_a_missing_rules_file_says_which_setting_to_fix(tmp_path):
    with pytest.raises(ConfigError, match="ARENA_CATEGORIES") as caught:
        load_rules(tmp_path / "nowhere.yaml")
    assert "nowhere.yaml" in str(caught.value)


# (c) A user's own rules: extra categories, word lists, all: groups, vetoes.

USER_RULES = r"""
words:
  food: [pizza, pasta, sushi]
categories:
  ocr:
    description: reading text
    any: [transcri\w*]
  menu_pricing:
    description: what dishes cost
    all:
      - ["how much|price", "{food}"]
    unless: [frozen]
  plants_2:
    description: plant care
    any:
      - water(?:ing)? (?:my|the|this) plants?
"""


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("how much is the pizza here?", ("menu_pricing",)),
        ("what's the price of the sushi platter", ("menu_pricing",)),
        ("how much is the frozen pizza", ()),  # the veto
        ("how much is it", ()),  # a verb without its object
        ("pizza!", ()),  # an object without its verb
        ("how often should I be watering my plants", ("plants_2",)),
        ("transcribe the recipe for the pasta", ("ocr",)),
    ],
)
def test_a_users_file_can_define_its_own_categories(tmp_path, prompt, expected):
    rules = load_rules(write(tmp_path, USER_RULES))
    assert rules.categories == ("ocr", "menu_pricing", "plants_2")
    assert rules.describe("menu_pricing") == "what dishes cost"
    assert rules.classify([prompt]) == expected


def test_describing_an_unknown_category_names_the_known_ones(tmp_path):
    rules = load_rules(write(tmp_path, USER_RULES))
    with pytest.raises(ConfigError, match="known: ocr, menu_pricing, plants_2"):
        rules.describe("charts")


@pytest.mark.parametrize(
    ("prompt", "matches"),
    [
        ("a cat on the sofa", True),
        ("CAT!", True),
        ("the category of this", False),  # not inside a word
        ("a bobcat", False),
        ("cat's toy", True),
    ],
)
def test_a_pattern_matches_whole_words_case_insensitively(tmp_path, prompt, matches):
    rules = load_rules(
        write(tmp_path, "categories:\n  cats:\n    description: d\n    any: [cat]\n")
    )
    assert rules.classify([prompt]) == (("cats",) if matches else ())


@pytest.mark.parametrize(
    ("prompt", "matches"),
    [
        ("mail me at bob@example.com", True),
        ("MAIL ME AT BOB@EXAMPLE.COM", True),
        ("Room 12B", True),
        ("room twelve", False),
        ("what's the ID?", True),
    ],
)
def test_upper_case_patterns_and_escapes_keep_their_meaning(tmp_path, prompt, matches):
    text = r"""
categories:
  ids:
    description: d
    any: ['\S+@\S+\.COM', 'ROOM \d+\w', '\bID\W']
"""
    rules = load_rules(write(tmp_path, text))
    assert rules.classify([prompt]) == (("ids",) if matches else ())


# (d) A battle's prompts together.


def test_a_battle_gets_the_union_of_its_prompts_categories_in_file_order(shipped):
    prompts = ["write a haiku about this", "how many birds are there?", "and describe it"]
    assert shipped.classify(prompts) == ("captioning", "counting", "creative")
    assert shipped.classify(prompts[1:2]) == ("counting",)


@pytest.mark.parametrize("prompts", [[], [""], ["   "], ["\n\t"], ["", "  "]])
def test_empty_or_blank_prompts_are_other(shipped, prompts):
    assert shipped.classify(prompts) == ()


def test_blank_follow_ups_change_nothing(shipped):
    assert shipped.classify(["count the apples", " ", ""]) == ("counting",)


# (e) Hand-written prompts (not from the labelled file) that pin the shipped behaviour.

PINNED = [
    ("give a detailed description of this picture", ("captioning",)),
    ("what's happening here?", ("captioning",)),
    ("summarise this photo for a blind user", ("captioning",)),
    ("write an instagram caption for this sunset", ("captioning", "creative")),
    ("describe the graph", ("captioning", "charts")),
    ("describe the layout of this room", ("captioning", "localization")),
    ("what does the note say", ("ocr",)),
    ("please transcribe the handwriting", ("ocr",)),
    ("translate this menu into english", ("ocr",)),
    ("what's the phone number on the van", ("ocr",)),
    ("was steht auf dem Schild?", ("ocr",)),
    ("turn this table into markdown", ("ocr", "charts")),
    ("solve question 3 on the worksheet", ("ocr", "reasoning")),
    ("where are my keys", ("localization",)),
    ("draw a box around the dog", ("localization",)),
    ("is the cup on the left or right side of the table", ("localization",)),
    ("where should i click to change my password", ("localization",)),
    ("où est le chat?", ("localization",)),
    ('find the word "sale"', ("ocr", "localization")),
    ("count the apples", ("counting",)),
    ("are there more cats or dogs", ("counting",)),
    ("is there one car or two", ("counting",)),
    ("combien de personnes sur la photo", ("counting",)),
    ("how many slices are left if I eat two", ("counting", "reasoning")),
    ("what breed is this cat", ("recognition",)),
    ("who painted this", ("recognition",)),
    ("is this a wasp or a bee", ("recognition",)),
    ("where is this", ("recognition",)),
    ("brand of the laptop on the left", ("recognition",)),
    ("estimate the calories in this plate", ("recognition", "reasoning")),
    ("which month had the most sales according to the graph", ("charts",)),
    ("explain this diagram", ("charts",)),
    ("read the chart", ("charts",)),
    ("what's the percent change from 2019 to 2021 in the chart", ("charts", "reasoning")),
    ("what's the next shape in the sequence", ("reasoning",)),
    ("how tall is this building approximately", ("reasoning",)),
    ("write the html for this mockup", ("reasoning",)),
    ("does this code compile?", ("ocr", "reasoning")),
    ("write a limerick about this cat", ("creative",)),
    ("pretend you are this dog and write a diary entry", ("creative",)),
    ("why is this comic funny", ("reasoning", "creative")),
    ("act as a tour guide and tell me about this landmark", ("recognition", "creative")),
    ("hi", ()),
    ("ok thanks", ()),
    ("is this safe?", ()),
    ("is it raining in the picture", ()),
    ("remove the background", ()),
    ("generate an image like this in anime style", ()),
    ("how much is this worth", ()),
    ("what color is the car", ()),
]


@pytest.mark.parametrize(("prompt", "expected"), PINNED)
def test_hand_written_prompts_get_the_categories_the_guide_gives_them(shipped, prompt, expected):
    assert shipped.classify([prompt]) == expected
