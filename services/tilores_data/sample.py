"""Deterministic synthetic customers shaped like the Tilores records of a
credit-services company: each customer is one entity of several records
(Contact, Opportunity, Transaction, zoho_tickets, calls, credit reports).

Every value is made up. E-mails use the reserved example.* domains and phone
numbers the fictional 555 exchange. The same seed always gives the same data.
"""

from __future__ import annotations

import random
import string
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

FIRST_NAMES = (
    "Ada Alma Amos Ansel Aria Basil Bea Cora Cyrus Dahlia Dean Delia Edgar Elsie Emmett Etta Felix Flora "
    "Gideon Greta Hazel Hugo Ida Ira Iris Jasper June Kit Lena Levi Lila Lionel Mabel Milo Nell Nico Opal "
    "Orson Pearl Quinn Rhea Rufus Sadie Silas Tessa Theo Una Vera Wade Willa Xena Yara Zane"
).split()
LAST_NAMES = (
    "Abbott Barlow Beckett Calloway Carver Dalton Ellery Fairchild Fenwick Galloway Hartley Holloway Ingram "
    "Jessup Kendrick Lockwood Marlow Merriweather Norwood Oakley Pemberton Quimby Radcliffe Rowan Sinclair "
    "Thornbury Underhill Vance Whitlock Winslow Yardley Zeller Ashdown Bramwell Crane Draper Ferris Gale "
    "Harlow Ives Kingsley Langford Mercer Nash Osborne Prescott Sterling Thatcher Wren"
).split()
CITIES = (
    ("Austin", "TX", "Texas"), ("Denver", "CO", "Colorado"), ("Tampa", "FL", "Florida"),
    ("Columbus", "OH", "Ohio"), ("Phoenix", "AZ", "Arizona"), ("Raleigh", "NC", "North Carolina"),
    ("Portland", "OR", "Oregon"), ("Boise", "ID", "Idaho"), ("Madison", "WI", "Wisconsin"),
    ("Richmond", "VA", "Virginia"), ("Atlanta", "GA", "Georgia"), ("Reno", "NV", "Nevada"),
)  # fmt: skip
AREA_CODES = (
    "201 202 203 205 206 207 208 209 210 212 213 214 215 216 217 218 219 224 225 228 229 231 234 239 240 "
    "248 251 252 253 254 256 260 262 267 269 270 272 276 281 301 302 303 304 305 307 308 309 310 313 314"
).split()
STREETS = "Maple Oak Cedar Birch Willow Elm Juniper Aspen Spruce Laurel".split()
STATUSES = ("Active", "Active", "Active", "Active", "Past Due", "Cancelled", "On Hold")
PRODUCTS = ("Credit Restoration Premium", "Credit Restoration Standard", "Credit Builder", "Success Plus")
STAGES = ("Closed Won", "Closed Won", "Negotiation", "Closed Lost")
BUREAUS = ("TransUnion", "Equifax", "Experian")
TICKET_SUBJECTS = (
    ("Billing question", "Billing"), ("Dispute status update", "Disputes"),
    ("Cancel Request", "Cancel Request"), ("Update payment method", "Billing"),
    ("Credit report access", "Account Access"), ("Score changed", "Credit Report"),
)  # fmt: skip
CREDITORS = ("Capital Harbor Bank", "Summit Card Services", "Riverbend Credit Union", "Northstar Auto Finance")
CALL_TYPES = ("Inbound", "Outbound")
CAMPAIGNS = ("Welcome", "Retention", "Billing Follow-up", "Dispute Update")
# The day library callers (tests, benchmarks, the evaluation's question set)
# draw a sample as of, so their figures repeat; a store made by `seed` is
# drawn as of the day it is made, so its dates read as current.
SAMPLE_DAY = date(2026, 11, 1)


class SampleRandom(random.Random):
    """The random source of a sample and the day it is drawn as of. Every
    date is drawn relative to that day, so one seed on two days gives the
    same customers with their dates moved by the days between."""

    def __init__(self, seed: int, today: date):
        super().__init__(seed)
        self.today = today


def _sf_id(rng: SampleRandom, prefix: str) -> str:
    """An 18-character Salesforce-style id."""
    return prefix + "".join(rng.choices(string.ascii_letters + string.digits, k=18 - len(prefix)))


def _numeric_id(rng: SampleRandom) -> str:
    return str(rng.randrange(10**17, 10**18))


def _day(rng: SampleRandom, lo_days: int, hi_days: int) -> date:
    return rng.today - timedelta(days=rng.randint(lo_days, hi_days))


def _money(value: float) -> str:
    return f"{value:.2f}"


def phone_for(index: int) -> str:
    """A distinct fictional phone number per index (500,000 before reuse)."""
    area = AREA_CODES[index % len(AREA_CODES)]
    line = (index // len(AREA_CODES)) % 10_000
    return f"({area}) 555-{line:04d}"


@dataclass
class Customer:
    """One synthetic person: the entity id and its records, grouped."""

    entity_id: str
    records: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Person:
    first: str
    last: str
    email: str
    client_id: str
    phone: str
    status: str
    product: str
    birth: date
    city: tuple[str, str, str]
    scores: dict[str, int] | None = None


def _liability(rng: SampleRandom, person: Person, n: int, issued: date) -> dict[str, Any]:
    limit = rng.choice((500, 1000, 2500, 5000, 10000))
    balance = round(limit * rng.uniform(0.02, 0.95), 2)
    late30, late60, late90 = rng.choice(((0, 0, 0),) * 4 + ((1, 0, 0), (2, 1, 0), (3, 1, 1)))
    rating = "AsAgreed" if late30 == 0 else rng.choice(("Late30Days", "Late60Days", "AsAgreed"))
    opened = _day(rng, 400, 3000)
    return {
        "AccountIdentifier": f"{rng.randrange(10**7, 10**8)}XXXX",
        "AccountType": rng.choice(("R", "R", "I", "M")),
        "AccountStatusType": rng.choice(("Open", "Open", "Open", "Closed")),
        "AccountOpenedDate": opened.isoformat(),
        "AccountReportedDate": (issued - timedelta(days=rng.randint(5, 40))).isoformat(),
        "LastPaymentDate": (issued - timedelta(days=rng.randint(3, 45))).isoformat(),
        "CreditLimitAmount": str(limit),
        "CreditBalance": _money(balance),
        "MonthlyPaymentAmount": str(max(25, int(balance * 0.03))),
        "PastDueAmount": "0" if late30 == 0 else str(rng.randint(25, 300)),
        "LateCount": {"Days30": str(late30), "Days60": str(late60), "Days90": str(late90)},
        "CurrentRating": {"Code": "1" if rating == "AsAgreed" else "2", "Type": rating},
        "Creditor": {"Name": CREDITORS[(n + len(person.last)) % len(CREDITORS)]},
        "IsChargeoffIndicator": False,
        "IsCollectionIndicator": False,
        "DerogatoryDataIndicator": late90 > 0,
    }


def _credit_response(rng: SampleRandom, person: Person, bureau: str, score: int, issued: date) -> dict[str, Any]:
    liabilities = [_liability(rng, person, n, issued) for n in range(rng.randint(2, 5))]
    revolving = [x for x in liabilities if x["AccountType"] == "R"] or liabilities
    used = sum(float(x["CreditBalance"]) for x in revolving)
    limit = sum(float(x["CreditLimitAmount"]) for x in revolving)
    utilization = round(100 * used / limit) if limit else 0
    inquiries = [
        {
            "CreditInquiryID": f"INQ{rng.randrange(10**6, 10**7)}",
            "Name": rng.choice(CREDITORS),
            "Date": (issued - timedelta(days=rng.randint(10, 300))).isoformat(),
            "PurposeType": rng.choice(("Credit Card", "Auto Loan", "Mortgage")),
            "CreditBusinessType": "Finance",
        }
        for _ in range(rng.randint(0, 4))
    ]
    return {
        "CREDIT_BUREAU": bureau,
        "CreditReportFirstIssuedDate": issued.isoformat(),
        "CreditReportIdentifier": f"CR{rng.randrange(10**8, 10**9)}",
        "Report_Type": "Merged",
        "Vendor": "Sample Bureau Gateway",
        "BORROWER": {
            "FirstName": person.first.upper(),
            "LastName": person.last.upper(),
            "BirthDate": person.birth.isoformat(),
            "RESIDENCE": [{"City": person.city[0], "State": person.city[1], "BorrowerResidencyType": "Current"}],
        },
        "CREDIT_SCORE": [
            {
                "Value": str(score),
                "CreditRepositorySourceType": bureau,
                "ModelNameType": "Other",
                "Date": issued.isoformat(),
                "CreditScoreID": f"SC{rng.randrange(10**6, 10**7)}",
            }
        ],
        "CREDIT_LIABILITY": liabilities,
        "CREDIT_INQUIRY": inquiries,
        "CREDIT_SUMMARY": {
            "Name": "Attributes",
            "DATA_SET": [
                {"ID": "PT016", "Name": "Utilization on revolving trades", "Value": str(utilization)},
                {"ID": "AT01", "Name": "Total number of trades", "Value": str(len(liabilities))},
            ],
        },
    }


def _records(rng: SampleRandom, person: Person) -> list[dict[str, Any]]:
    """One customer's records across the source systems, drawn from `rng`
    in a fixed order (the same seed gives the same records)."""
    contact_id = _sf_id(rng, "003")
    enroll = _day(rng, 60, 1500)
    created = enroll - timedelta(days=rng.randint(1, 30))
    street = f"{rng.randint(10, 9999)} {rng.choice(STREETS)} St"
    fee = rng.choice((79.0, 89.0, 99.0, 119.0))
    records = [
        _contact(rng, person, contact_id, street, enroll, created, fee),
        _opportunity(rng, person, enroll, fee),
    ]
    records += _charges(rng, person, enroll, fee)
    records += _tickets(rng, person)
    records += _calls(rng, person)
    records += _credit_pulls(rng, person)
    return records


def _identity(person: Person) -> dict[str, Any]:
    """The identifiers every record of the customer's own systems carries."""
    return {"EMAIL": person.email, "CLIENT_ID": person.client_id}


def _contact(
    rng: SampleRandom, person: Person, contact_id: str, street: str, enroll: date, created: date, fee: float
) -> dict[str, Any]:
    return {
        "id": contact_id,
        "SOURCE": "Contact",
        **_identity(person),
        "FIRST_NAME": person.first,
        "LAST_NAME": person.last,
        "PHONE_NUMBER": person.phone,
        "DATE_OF_BIRTH": person.birth.isoformat(),
        "CUSTOMER_AGE": str((rng.today - person.birth).days // 365),
        "MAILING_STREET": street,
        "MAILING_CITY": person.city[0],
        "MAILING_STATE": person.city[2],
        "MAILING_STATE_CODE": person.city[1],
        "MAILING_POSTAL_CODE": f"{rng.randint(10000, 99999)}",
        "STATUS": person.status,
        "PRODUCT_NAME": person.product,
        "CURRENT_PRODUCT": person.product,
        "ENROLL_DATE": enroll.isoformat(),
        "CREATED_DATE": created.isoformat(),
        "DAYS_SINCE_ENROLL": str((rng.today - enroll).days),
        "LANGUAGE": "English",
        "SPANISH_SPEAKER": False,
        "ACTIVE": person.status in ("Active", "Past Due"),
        "ID_18_CHAR": contact_id,
        "KYC_STATUS": "Verified",
        "RECURRING_MONTHLY_FEE": _money(fee),
        "NEXT_SUBSCRIPTION_DATE": (rng.today + timedelta(days=rng.randint(1, 28))).isoformat(),
        "NET_BALANCE_DUE": _money(fee if person.status == "Past Due" else 0.0),
    }


def _opportunity(rng: SampleRandom, person: Person, enroll: date, fee: float) -> dict[str, Any]:
    return {
        "id": _sf_id(rng, "006"),
        "SOURCE": "Opportunity",
        "CLIENT_ID": person.client_id,
        "OPPORTUNITY_ID": _sf_id(rng, "006"),
        "OPPORTUNITY_OWNER": f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}",
        "STAGE_NAME": rng.choice(STAGES),
        "PRODUCT_NAME": person.product,
        "DEAL_CLOSE_DATE": enroll.isoformat(),
        "AMOUNT": _money(fee),
    }


def _charges(rng: SampleRandom, person: Person, enroll: date, fee: float) -> list[dict[str, Any]]:
    """Monthly charges since enrolment (the last four), newest last; a
    past-due customer's latest charge was declined."""
    last_day = rng.today if person.status != "Cancelled" else enroll + timedelta(days=rng.randint(30, 120))
    payments = []
    day = enroll
    while day <= min(last_day, rng.today):
        payments.append(day)
        day += timedelta(days=30)
    payments = payments[-4:]
    last_approved = None
    charges = []
    for n, paid in enumerate(payments):
        declined = person.status == "Past Due" and n == len(payments) - 1
        if not declined:
            last_approved = paid
        charges.append(
            {
                "id": _numeric_id(rng),
                "SOURCE": "Transaction",
                **_identity(person),
                "TYPE": "Charge",
                "TRANSACTION_AMOUNT": _money(fee),
                "TRANSACTION_CREATED_DATE": paid.isoformat(),
                "RESPONSE_STATUS": "Declined" if declined else "Approved",
                "PAYMENT_METHOD": "Credit Card",
                "CARD_TYPE": rng.choice(("Visa", "Mastercard", "Discover")),
                "CARD_LAST_4": f"{rng.randint(0, 9999):04d}",
                "RECURRING": True,
            }
        )
    if last_approved is not None:
        # Billing summary fields as the payment system denormalises them onto
        # the newest transaction.
        charges[-1].update(
            {
                "LAST_APPROVED_TRANSACTION": last_approved.isoformat(),
                "LAST_APPROVED_TRANSACTION_AMOUNT": _money(fee),
                "NEXT_TRANSACTION_DATE": (payments[-1] + timedelta(days=30)).isoformat(),
            }
        )
    return charges


def _tickets(rng: SampleRandom, person: Person) -> list[dict[str, Any]]:
    tickets = []
    for _ in range(rng.randint(0, 2)):
        subject, category = rng.choice(TICKET_SUBJECTS)
        opened = datetime.combine(_day(rng, 1, 300), datetime.min.time()) + timedelta(minutes=rng.randint(480, 1080))
        closed = rng.random() < 0.7
        ticket = {
            "id": _numeric_id(rng),
            "SOURCE": "zoho_tickets",
            "ZOHO_EMAIL": person.email,
            "CLIENT_ID": person.client_id,
            "TICKETNUMBER": str(rng.randint(100000, 999999)),
            "SUBJECT": subject,
            "CATEGORY": category,
            "ZOHO_STATUS": "Closed" if closed else "Open",
            "PRIORITY": rng.choice(("Low", "Medium", "High")),
            "CREATEDTIME": opened.isoformat() + "Z",
        }
        if closed:  # an open ticket has no closing time at all
            ticket["CLOSEDTIME"] = (opened + timedelta(hours=rng.randint(2, 96))).isoformat() + "Z"
        tickets.append(ticket)
    return tickets


def _calls(rng: SampleRandom, person: Person) -> list[dict[str, Any]]:
    calls = []
    for _ in range(rng.randint(0, 2)):
        start = datetime.combine(_day(rng, 1, 200), datetime.min.time()) + timedelta(minutes=rng.randint(480, 1080))
        duration = rng.randint(60, 1500)
        calls.append(
            {
                "id": _numeric_id(rng),
                "SOURCE": "calls",
                "CLIENT_ID": person.client_id,
                "PHONE_EXTERNAL": person.phone,
                "CALL_ID": _numeric_id(rng),
                "CALL_TYPE": rng.choice(CALL_TYPES),
                "CALL_DURATION": str(duration),
                "CALL_START_TIME": start.isoformat() + "Z",
                "CALL_HANGUP_TIME": (start + timedelta(seconds=duration)).isoformat() + "Z",
                "AGENT_USERNAME": f"agent.{rng.choice(LAST_NAMES).lower()}",
                "CAMPAIGN_NAME": rng.choice(CAMPAIGNS),
            }
        )
    return calls


def _credit_pulls(rng: SampleRandom, person: Person) -> list[dict[str, Any]]:
    """Per bureau, an earlier pull and the newest, so reports show a trend."""
    pulls = []
    for bureau, score in (person.scores or {}).items():
        issued = _day(rng, 10, 120)
        earlier = issued - timedelta(days=rng.randint(90, 200))
        earlier_score = max(300, min(850, score - rng.randint(-15, 40)))
        for when, value in ((earlier, earlier_score), (issued, score)):
            pulls.append(
                {
                    "id": _numeric_id(rng),
                    "SOURCE": "Contact",
                    **_identity(person),
                    "FIRST_NAME": person.first,
                    "LAST_NAME": person.last,
                    "CREDIT_RESPONSE": _credit_response(rng, person, bureau, value, when),
                }
            )
    return pulls


DEMO_PERSON = Person(
    first="Edwina",
    last="Hawthorne",
    email="edwina.hawthorne@example.com",
    client_id="2480135",
    phone="(312) 555-0142",
    status="Active",
    product="Credit Restoration Premium",
    birth=date(1984, 6, 12),
    city=("Chicago", "IL", "Illinois"),
    scores={"TransUnion": 712, "Equifax": 705, "Experian": 698},
)


def generate_customers(count: int, seed: int = 7, today: date = SAMPLE_DAY) -> Iterator[Customer]:
    """`count` customers; the first is always the demo customer Edwina
    Hawthorne. Ids, names and values depend only on `seed` and position;
    dates on `today` too."""
    rng = SampleRandom(seed, today)
    for index in range(count):
        if index == 0:
            person = DEMO_PERSON
        else:
            first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            domain = ("example.com", "example.net", "example.org")[index % 3]
            with_credit = rng.random() < 0.7
            bureaus = rng.sample(BUREAUS, rng.randint(1, 3)) if with_credit else []
            base_score = rng.randint(520, 820)
            person = Person(
                first=first,
                last=last,
                email=f"{first.lower()}.{last.lower()}{index}@{domain}",
                client_id=str(2_000_000 + 38 * index),
                phone=phone_for(index),
                status=rng.choice(STATUSES),
                product=rng.choice(PRODUCTS),
                birth=date(1950, 1, 1) + timedelta(days=rng.randint(0, 18000)),
                city=rng.choice(CITIES),
                scores={b: max(300, min(850, base_score + rng.randint(-25, 25))) for b in bureaus} or None,
            )
        entity_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        yield Customer(entity_id=entity_id, records=_records(rng, person))
