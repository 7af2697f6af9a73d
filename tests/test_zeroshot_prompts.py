"""Prompts (byte-exact compat strings) and answer-parser policies of bah zeroshot."""
import pytest

from bah.apps.zeroshot.answer import PARSERS, create_parser
from bah.apps.zeroshot.prompt import PromptError, load_prompts

D1 = ("Ambivalence is the state of having contradictory or conflicting feelings or attitudes towards something "
      "or someone simultaneously.")
D2 = "Ambivalence and Hesitancy is understood as the simultaneous experience of desires for change and against change."
TAIL = "Classify the emotion in the video as either 'Non-Ambivalent' or 'Ambivalent'.\nRespond with only one word: ASSISTANT:"
# The original script's five prompts, written out by hand from its source (snapshot).
ORIGINAL = {
    "s": "USER: <video>\n" + TAIL,
    "d1": "USER: <video>\nDefinition: " + D1 + TAIL,
    "d2": "USER: <video>\nDefinition: " + D2 + TAIL,
    "td1": "USER: <video>\nVideo transcript: {T}. Definition: " + D1 + TAIL,
    "td2": "USER: <video>\nVideo transcript: {T}. Definition: " + D2 + TAIL,
}


@pytest.fixture(scope="module")
def book():
    return load_prompts()


@pytest.mark.parametrize("flag", sorted(ORIGINAL))
def test_compat_prompts_are_byte_exact(book, flag):
    transcript = "I want to stop, but {maybe} not now"
    got = book.render(flag, transcript, style="compat").text
    assert got == ORIGINAL[flag].replace("{T}", transcript)
    assert got.encode("utf-8") == ORIGINAL[flag].replace("{T}", transcript).encode("utf-8")


def test_definition_runs_into_classify_without_space(book):
    assert "simultaneously.Classify the emotion" in book.render("d1").text
    assert book.render("s").text.endswith("one word: ASSISTANT:")


def test_unknown_flag_falls_back_to_simple_only_in_compat_mode(book):
    assert book.render("zz", compat_fallback=True).text == ORIGINAL["s"]
    with pytest.raises(PromptError, match="unknown prompt 'zz'"):
        book.render("zz")


def test_transcript_prompts_need_a_transcript_and_hash_follows_it(book):
    with pytest.raises(PromptError, match="needs a transcript"):
        book.render("td1", None)
    a, b = book.render("td1", "yes"), book.render("td1", "no")
    assert a.hash != b.hash and a.hash == book.render("td1", "yes").hash
    assert not book.get("d1").uses_transcript and book.get("td2").uses_transcript


def test_definition_slot_is_not_expanded_inside_a_transcript(book):
    text = book.render("td1", "see {definition} here").text
    assert "see {definition} here" in text


def test_chat_style_is_one_clean_user_message(book):
    r = book.render("td1", "hello", style="chat")
    assert r.text is None
    assert r.content == ("Video transcript: hello. Definition: " + D1 + " Classify the emotion in the video as either "
                         "'Non-Ambivalent' or 'Ambivalent'. Respond with only one word.")
    assert r.hash != book.render("td1", "hello", style="compat").hash


def test_text_only_template_has_no_video_tag(book):
    r = book.render("t", "hello", video=False)
    assert r.text == "USER: Video transcript: hello. " + TAIL


def test_bad_prompt_file_is_named(tmp_path):
    p = tmp_path / "p.yaml"
    p.write_text("candidates: [a, b]\ndefinitions: {}\ninstruction: x\nstyles: {compat: {}}\n"
                 "prompts: {q: {body: 'x', definition: nope}}\n")
    with pytest.raises(PromptError, match="unknown definition 'nope'"):
        load_prompts(p)


# answer text -> (compat-videollava, compat-affectgpt, fixed) as (label, parsed); None = abstain
PARSER_TABLE = [
    ("Non-Ambivalent", (0, True), (0, True), (0, True)),
    ("Non-Ambivalent.", (1, False), (0, False), (0, True)),
    ("non ambivalent", (1, False), (0, False), (0, True)),
    ("Ambivalent", (1, True), (1, True), (1, True)),
    (" Ambivalent ", (1, True), (1, True), (1, True)),
    ("", (1, False), (0, False), (None, False)),
    ("The person in the video seems hesitant about it.", (1, False), (0, False), (1, True)),
    ("Answer: Non-Ambivalent", (0, True), (0, False), (0, True)),
    ("Answer: Ambivalent", (1, True), (0, False), (1, True)),
    ("'Ambivalent'", (1, False), (0, False), (1, True)),
    ("The person is not ambivalent", (1, False), (0, False), (0, True)),
    ("Ambivalent or Non-Ambivalent", (1, False), (0, False), (None, False)),
    ("Neutral", (1, False), (0, False), (None, False)),
]


@pytest.mark.parametrize("text,videollava,affectgpt,fixed", PARSER_TABLE)
def test_parser_table(text, videollava, affectgpt, fixed):
    for name, want in (("compat-videollava", videollava), ("compat-affectgpt", affectgpt), ("fixed", fixed)):
        p = create_parser(name)(text)
        assert (p.label, p.parsed) == want, (name, text)


def test_unparsed_policy_of_the_fixed_parser():
    assert create_parser("fixed", unparsed="0")("Neutral").label == 0
    assert create_parser("fixed", unparsed="1")("Neutral").label == 1
    assert create_parser("fixed", unparsed="abstain")("Neutral").label is None
    with pytest.raises(ValueError, match="unparsed policy"):
        create_parser("fixed", unparsed="2")
    assert PARSERS.list() == ["compat-affectgpt", "compat-videollava", "fixed"]
