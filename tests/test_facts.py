"""Yes/no questions answered from the agent's facts: a reply that cannot contradict them."""

from __future__ import annotations

import pytest

from voxline.config import load_agent
from voxline.knowledge.facts import FactBook, stem

FACTS = FactBook.from_prompt(
    """You are the receptionist.
Facts:
- We repair bicycles and e-bikes. We do not repair motorbikes or scooters.
- We accept cash and cards. We do not accept cheques.
- Payment is due at the visit; we accept cards only, no cash.
- We have no vegan cheese.
- Every pizza can be made with a gluten-free base for 2 dollars more.
- Repairs usually take two working days."""
)


@pytest.mark.parametrize(
    ("question", "answer"),
    [
        ("Can I pay with a cheque?", "No, we do not accept cheques."),
        ("Do you repair scooters?", "No, we do not repair motorbikes or scooters."),
        ("Do you have vegan cheese?", "No, we have no vegan cheese."),
        ("Can I get a gluten-free pizza?", "Yes, every pizza can be made with a gluten-free base for 2 dollars more."),
        # Less certain: the LLM answers.
        ("Do you give a warranty on repairs?", None),  # "warranty" is in no fact
        ("Do you accept pet insurance?", None),  # only a verb in common
        ("How long does a repair take?", None),  # not a yes/no question
        ("Can I pay in cash?", None),  # two facts speak of cash: not one answer
    ],
)
def test_a_yes_no_question_gets_the_one_fact_that_answers_it(question: str, answer: str | None) -> None:
    assert FACTS.answer(question) == answer


def test_plurals_meet_their_singulars() -> None:
    assert [stem(w) for w in ("cheques", "boxes", "puppies", "bus", "glass", "cats")] == [
        "cheque",
        "box",
        "puppy",
        "bus",
        "glass",
        "cat",
    ]


def test_the_packaged_front_desk_answers_from_its_facts() -> None:
    facts = FactBook.from_prompt(load_agent(None).system_prompt)
    assert facts.answer("Do you accept dental insurance?") == "Yes, we accept cash, cards and most dental insurance."
    assert facts.answer("Can I bring my dog?") is None  # nothing about pets: not guessed here
