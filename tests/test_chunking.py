"""The streamed reply is cut into speakable pieces as soon as a clause allows."""

from voxline.llm.chunking import ClauseChunker, speakable


def feed(text: str, step: int = 3) -> list[str]:
    chunker = ClauseChunker()
    pieces: list[str] = []
    for i in range(0, len(text), step):
        pieces += chunker.push(text[i : i + step])
    return pieces + chunker.flush()


def test_first_clause_is_cut_early_and_sentences_after():
    pieces = feed("Sure, we are open Monday to Friday, 9 am to 6 pm. On Saturday we open at 10 am. Bye!")
    assert pieces[0] == "Sure, we are open Monday to Friday,"
    assert "9 am to 6 pm." in pieces
    assert pieces[-1] == "Bye!"
    assert " ".join(pieces) == "Sure, we are open Monday to Friday, 9 am to 6 pm. On Saturday we open at 10 am. Bye!"


def test_decimal_points_and_short_fragments_do_not_cut():
    assert feed("It costs 60.50 dollars in total.") == ["It costs 60.50 dollars in total."]


def test_markdown_and_emoji_are_not_spoken():
    assert speakable("**Hello** _there_ 😀 # ok") == "Hello there ok"


def test_first_piece_can_be_cut_after_a_few_words_but_not_on_a_dangling_word():
    chunker = ClauseChunker(first_max_words=6)
    pieces: list[str] = []
    for token in "We are open on Saturday from ten to two in the afternoon.".split(" "):
        pieces += chunker.push(token + " ")
    pieces += chunker.flush()
    assert pieces == ["We are open on Saturday from ten", "to two in the afternoon."]
    chunker = ClauseChunker(first_max_words=4)
    assert chunker.push("It costs sixty dollars and a ") == ["It costs sixty dollars"]


def test_a_word_still_being_written_is_not_cut():
    chunker = ClauseChunker(first_max_words=3)
    assert chunker.push("Our clinic open") == []  # "open" may be "opens"
    assert chunker.push("s daily") == ["Our clinic opens"]


def test_a_one_word_opener_is_spoken_at_its_comma_when_allowed():
    """'Sure,' goes to speech while the model is still writing the rest of the sentence."""
    chunker = ClauseChunker(first_min_words=1, first_max_words=4)
    assert chunker.push("Sure") == []
    assert chunker.push(", I") == ["Sure,"]
    assert chunker.push(" can help, with that") == []  # later pieces wait for longer clauses
    assert ClauseChunker().push("Sure, I") == []
