"""Field discovery: every Record field with its category, its GraphQL type,
the kind of personal data it holds, whether an entity carries it, and the
share of entities that do.

Categories follow the instance's own grouping of its 163 fields: identity,
contact, status (Salesforce, product, enrollment, cancellation), billing,
card, calls, tickets and credit; a field the catalog does not know (one a
newer Tilores schema added) is "other"."""

from __future__ import annotations

from dataclasses import dataclass

from graphql import GraphQLList, GraphQLNonNull, GraphQLSchema

from services.tilores_data.tilores_schema import fields_of

FIELD_CATEGORIES: dict[str, tuple[str, ...]] = {
    "identity": (
        "id", "FIRST_NAME", "LAST_NAME", "MIDDLE_NAME", "CLIENT_ID", "DATE_OF_BIRTH", "CUSTOMER_AGE", "SPOUSE",
        "SPOUSE_FULL_NAME", "LANGUAGE", "SPANISH_SPEAKER", "SOURCE", "SOURCE_TYPE", "TYPE",
        "DRIVING_LICENSE_NUMBER", "DRIVING_LICENSE_ISSUED_BY", "DRIVING_LICENSE_EXPIRY_DATE",
    ),
    "contact": (
        "EMAIL", "PHONE_EXTERNAL", "PHONE_NUMBER", "EMAIL_CONFIRMATION_DATE", "MAILING_STREET",
        "MAILING_CITY", "MAILING_STATE", "MAILING_STATE_CODE", "MAILING_POSTAL_CODE", "STATE_ABBREVIATION",
        "SMS_OPT_OUT", "TCPA", "CONTACT_TYPE", "CONTACT_NEW", "ZOHO_CONTACT_ID",
    ),
    "status": (
        "OPPORTUNITY_ID", "OPPORTUNITY", "OPPORTUNITY_OWNER", "STAGE_NAME", "DEAL_CLOSE_DATE",
        "DEAL_CLOSE_TIME", "CLOSE_DATE", "ID_18_CHAR", "X18_CHAR_ID", "ORIGINAL_LEAD_ID",
        "COLD_LEAD_CREATED_DATE", "CREATED_DATE", "DAYS_SINCE_CREATED", "CP_PORTAL_LINK",
        "GATHRR_CUSTOMER_ID", "HOW_DID_YOU_HEAR_ABOUT_US", "REFERRED_BY_CLIENT", "GENERATE_REFERRAL_BY",
        "PRIMARY", "ACTIVE", "STATUS", "PRODUCT_NAME", "CURRENT_PRODUCT", "CURRENT_PRODUCT_TYPE",
        "ENROLL_DATE", "RE_ENROLL_DATE", "RE_ENROLLMENT", "REENROLL_CLIENT", "DAYS_SINCE_ENROLL",
        "DAYS_SINCE_ENROLLED", "MONTHS_SINCE_ENROLL", "ENROLLMENT_FEE", "ENROLLMENT_BALANCE",
        "ENROLLMENT_CAPTURE_COMPLETED", "NEXT_SUBSCRIPTION_DATE", "CONTRACT_SIGNED",
        "SUCCESS_PLUS_CONTRACT_SIGNED", "WEB_ENROLLMENT", "WEB_ENROLLMENT_STATUS", "TCP_WEBSITE_ENROLLMENT",
        "IS_EB0_DATE", "KYC_STATUS", "VERIFY_IDENTITY", "TU_AUTHENTICATED", "ID_DOC_UPLOADED", "CANCEL_DATE",
        "CANCEL_REASON", "CANCEL_REASONS", "CANCELLATION_DATE", "CANCELLED_BY", "AGE_OF_CANCELLATION",
        "CLAWBACK_DATE", "CLAWBACK_REASONS", "CAP_COMPLETED", "CAP_COMPLETED_DATE", "CAP_MISSED", "ACE_CAP",
    ),
    "billing": (
        "TRANSACTION_AMOUNT", "TRANSACTION_CREATED_DATE", "TRANSACTION_WITH_VOID", "LAST_TRANSACTION",
        "LAST_APPROVED_TRANSACTION", "LAST_APPROVED_TRANSACTION_AMOUNT",
        "DAYS_SINCE_LAST_APPROVED_TRANSACTION", "LAST_FAILED_TRANSACTION", "DAYS_SINCE_LAST_FAILED",
        "LAST_REFUND_TRANSACTION_DATE", "NEXT_TRANSACTION_DATE", "UPCOMING_SCHEDULED_PAYMENT",
        "UPCOMING_SCHEDULED_PAYMENT_AMOUNT", "PAYMENT_METHOD", "PAYMENT_START_DATE", "PAYMENT_END_DATE",
        "PAST_DUE_DATE", "NET_BALANCE_DUE", "RECURRING", "RECURRING_MONTHLY_FEE", "SETUP_FEE2_AMOUNT",
        "SETUP_FEE2_DATE", "SECOND_FEE_TRANSACTION", "AMOUNT", "CREDIT_AMOUNT", "COUPON_AMOUNT",
        "DISCOUNT_AMOUNT", "DEBT_PAYMENT", "DEBT_PAYMENT_DATE", "DEBT_PAY_DATE", "CHARGEBACK",
        "CHARGEBACK_CREDITED", "IS_FULLY_REFUNDED", "REFUND_CONFIRMATION_SENT", "GATEWAY_DATE",
        "GATEWAY_RESPONSE", "RESPONSE_MESSAGE", "RESPONSE_STATUS", "PREPAID",
    ),
    "card": (
        "CARD_TYPE", "CARD_NUMBER", "CARD_FIRST_6_DIGIT", "CARD_LAST_4", "BIN", "CVV", "EXPIRATION_MONTH",
        "EXPIRATION_YEAR", "CARD_EXPIRED", "INVALID_CARD",
    ),
    "calls": (
        "CALL_ID", "CALL_TYPE", "CALL_DURATION", "CALL_START_TIME", "CALL_HANGUP_TIME", "AGENT_USERNAME",
        "CAMPAIGN_NAME",
    ),
    "tickets": (
        "ZOHO_ID", "TICKETNUMBER", "ZOHO_EMAIL", "ZOHO_PHONE", "SUBJECT", "ZOHO_STATUS", "STATUSTYPE",
        "CATEGORY", "SUBCATEGORY", "PRIORITY", "CREATEDTIME", "CLOSEDTIME", "DUEDATE", "RESPONSEDUEDATE",
        "COMMENTCOUNT", "THREADCOUNT", "SENTIMENT",
    ),
    "credit": ("CREDIT_RESPONSE",),
}  # fmt: skip
CATEGORY_OF = {name: category for category, names in FIELD_CATEGORIES.items() for name in names}
OTHER = "other"
ALL = "all"  # asked for as a category: every field

# Personal data a field policy keeps from models that may not see it. The
# last four card digits and the city or state are not on this list: they
# identify nobody on their own.
PII_KINDS: dict[str, str] = {
    "CARD_NUMBER": "card_number",
    "CARD_FIRST_6_DIGIT": "card_number",
    "BIN": "card_number",
    "CVV": "cvv",
    "DATE_OF_BIRTH": "date_of_birth",
    "DRIVING_LICENSE_NUMBER": "driving_licence",
    "MAILING_STREET": "address",
    "MAILING_POSTAL_CODE": "address",
}
# Inside a credit report, by the last part of the path.
NESTED_PII_KINDS: dict[str, str] = {
    "SSN": "ssn",
    "BirthDate": "date_of_birth",
    "StreetAddress": "address",
    "PostalCode": "address",
}


def category_of(name: str) -> str:
    return CATEGORY_OF.get(name, OTHER)


def pii_kind(path: str) -> str:
    """The kind of personal data at a field or a dot path into a record,
    e.g. "CREDIT_RESPONSE.BORROWER.SSN"; empty when it is none. Creditor
    and inquirer addresses inside a report are businesses', not the
    customer's."""
    if "." not in path:
        return PII_KINDS.get(path, "")
    parts = path.split(".")
    if "Creditor" in parts or "CREDIT_INQUIRY" in parts:
        return ""
    return NESTED_PII_KINDS.get(parts[-1], "")


@dataclass(frozen=True)
class FieldDescription:
    name: str
    category: str
    type: str
    pii_kind: str


def describe_fields(schema: GraphQLSchema) -> list[FieldDescription]:
    """Every Record field of the schema, in schema order."""
    out = []
    for name, field in fields_of(schema, "Record").items():
        field_type = field.type
        while isinstance(field_type, GraphQLNonNull | GraphQLList):
            field_type = field_type.of_type
        out.append(FieldDescription(name, category_of(name), field_type.name, pii_kind(name)))
    return out
