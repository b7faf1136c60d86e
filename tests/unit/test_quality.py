from services.optimizer.quality import category_of, evaluate, groundedness
from services.runtime.conversation import Fact

CONTEXT = (
    "Customer data from Tilores (lookup by client id 2480135). Customer: Edwina Hawthorne.\n"
    "- [status] Account status: Active (record 003A)\n"
    "- [credit] TransUnion credit score (report of 2026-10-06): 712 (record 9001)\n"
    "- [billing] Last approved payment date: 2026-10-26 (record 9002)"
)
FACTS = [
    Fact("status", "Account status", "Active", "003A"),
    Fact("credit", "TransUnion credit score", "712", "9001"),
    Fact("billing", "Last approved payment date", "2026-10-26", "9002"),
]


def test_a_grounded_complete_answer_scores_full():
    answer = "Edwina Hawthorne is Active [record 003A]; her TransUnion score is 712 [record 9001]."
    overall, scores = evaluate(
        "What is the status and credit score of client id 2480135?", answer, "found", CONTEXT, FACTS
    )
    assert overall == 1.0, scores


def test_a_number_not_in_the_context_is_flagged():
    score = groundedness("Her TransUnion score is 745.", CONTEXT, "credit score of client id 2480135?")
    assert score.value == 0.0 and "745" in score.reason


def test_an_unanswered_topic_lowers_coverage():
    overall, scores = evaluate(
        "What is her credit score and last payment?", "Her score is 712.", "found", CONTEXT, FACTS
    )
    coverage = next(s for s in scores if s.name == "coverage")
    assert coverage.value == 0.5 and "billing" in coverage.reason and overall < 1.0


def test_not_found_must_be_said():
    _, scores = evaluate("status of x@example.com?", "She is Active.", "not_found", "no customer matches", [])
    assert next(s for s in scores if s.name == "refusal").value == 0.0
    _, scores = evaluate("status of x@example.com?", "No customer matches x@example.com.", "not_found", "", [])
    assert next(s for s in scores if s.name == "refusal").value == 1.0


def test_format_and_categories():
    _, scores = evaluate("hi", "Here is {context} and then", "no_identifier", "", [])
    assert next(s for s in scores if s.name == "format").value == 0.5
    assert category_of("What is her credit score?", "found") == "credit"
    assert category_of("When was her last payment?", "found") == "transactions/billing"
    assert category_of("Any open tickets?", "found") == "calls and tickets"
    assert category_of("Who is she?", "found") == "customer profile"
    assert category_of("What can you do?", "no_identifier") == "general"
