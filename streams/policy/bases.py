"""The legal bases on which personal data leaves the company that holds it, as data.

The insurer's notice (個人情報の取扱いについて, section 5) provides personal data outside only under
these bases; joint use (the group's notice) and provision abroad (section 6) are two more. Each basis
says what the law asks of it: whether the subject's consent is needed, whether the provider keeps a
provision record (APPI Art. 29), whether it supervises the recipient (Art. 25), whether it is a
standing channel with a delivery topic or a provision case by case, and which classes of fields it
may ever carry. A policy may narrow a basis (its channels name items and purposes), never widen it.

This is this project's reading of APPI and the financial-sector guideline (金融分野ガイドライン), not
legal advice; ``article`` names what each row rests on. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from streams.policy.classification import FieldClass


class LegalBasis(StrEnum):
    JOINT_USE = "joint_use"
    ENTRUSTMENT = "entrustment"
    REINSURANCE = "reinsurance"
    INDUSTRY_EXCHANGE = "industry_exchange"
    PROFESSIONAL = "professional"
    LEGAL_OBLIGATION = "legal_obligation"
    FOREIGN = "foreign"


_ALWAYS = frozenset({FieldClass.IDENTIFIER, FieldClass.ITEM})
_CONTRACT = _ALWAYS | {FieldClass.INSURER_ONLY}
_WITH_SENSITIVE = _CONTRACT | {FieldClass.SENSITIVE}


@dataclass(frozen=True)
class Basis:
    """What the law asks of one basis of provision."""

    id: LegalBasis
    ja: str  # as the notice words it
    en: str
    article: str  # what the row rests on
    third_party: bool  # a provision to a third party (entrustment and joint use are not: Art. 27(5))
    consent_required: bool  # the subject's consent is needed (Art. 27(1), Art. 28)
    provision_record: bool  # the provider records each provision (Art. 29; not for 27(1) or 27(5) cases)
    supervision_log: bool  # the provider supervises the recipient (Art. 25) and logs what it received
    continuous: bool  # a standing channel with a delivery topic; else an operator provides case by case
    classes: frozenset[FieldClass]  # the classes of fields it may ever carry
    request_reference: bool = False  # each provision names the request it answers
    # The member of the record's ``consent`` that must be true: a consent given for this basis in
    # particular (Art. 28 asks for consent to provision to a third party abroad as such).
    consent_member: str | None = None

    @property
    def may_carry_sensitive(self) -> bool:
        return FieldClass.SENSITIVE in self.classes


BASES: dict[LegalBasis, Basis] = {
    b.id: b
    for b in (
        Basis(
            LegalBasis.JOINT_USE,
            ja="共同利用",
            en="Joint use",
            article="APPI Art. 27(5)(iii)",
            third_party=False,
            consent_required=False,
            provision_record=False,
            supervision_log=False,
            continuous=True,
            # Sensitive data only for the purposes the guideline allows, and joint use is not one of
            # them; insurer-only data is not in the notice's items.
            classes=_ALWAYS,
        ),
        Basis(
            LegalBasis.ENTRUSTMENT,
            ja="当社の業務遂行上必要な範囲で、保険代理店を含む委託先に取扱いを委託する場合",
            en="Entrustment of handling, insurance agents included, within the business's needs",
            article="APPI Art. 27(5)(i), Art. 25",
            third_party=False,
            consent_required=False,
            provision_record=False,
            supervision_log=True,
            continuous=True,
            classes=_WITH_SENSITIVE,
        ),
        Basis(
            LegalBasis.REINSURANCE,
            ja="再保険契約に伴い、当該保険契約の情報を提供する場合",
            en="The contract's information to a reinsurer, for a reinsurance contract",
            article="APPI Art. 27(1), Art. 29",
            third_party=True,
            consent_required=True,
            provision_record=True,
            supervision_log=False,
            continuous=True,
            classes=_WITH_SENSITIVE,
        ),
        Basis(
            LegalBasis.INDUSTRY_EXCHANGE,
            ja=(
                "不適切な保険引受や保険金支払を未然に防ぐため、一般社団法人日本少額短期保険協会および"
                "他の少額短期保険業者、保険会社との間で情報を交換する場合"
            ),
            en="Exchange with the association and other insurers, to prevent improper underwriting and claims",
            article="APPI Art. 27(1), Art. 29",
            third_party=True,
            consent_required=True,
            provision_record=True,
            supervision_log=False,
            continuous=True,
            classes=_CONTRACT,
        ),
        Basis(
            LegalBasis.PROFESSIONAL,
            ja=(
                "保険契約に関する利用目的の達成上必要な範囲で、日本弁護士連合会、弁護士会および所属する弁護士、"
                "保険金の請求・支払いに関する損害調査業務委託先や関係先、金融機関に提供する場合"
            ),
            en="To the bar, lawyers, claim investigators' related parties and banks, as a contract's purposes need",
            article="APPI Art. 27(1), Art. 29",
            third_party=True,
            consent_required=True,
            provision_record=True,
            supervision_log=False,
            continuous=False,
            classes=_WITH_SENSITIVE,
            request_reference=True,
        ),
        Basis(
            LegalBasis.LEGAL_OBLIGATION,
            ja="法令に基づく場合",
            en="Where a law requires it",
            article="APPI Art. 27(1)(i); no record (Art. 29(1) proviso)",
            third_party=True,
            consent_required=False,
            provision_record=False,
            supervision_log=False,
            continuous=False,
            classes=_WITH_SENSITIVE,
            request_reference=True,
        ),
        Basis(
            LegalBasis.FOREIGN,
            ja="再保険契約のために外国にある第三者への個人データの提供",
            en="Provision to a third party abroad, for reinsurance",
            article="APPI Art. 28, Art. 29",
            third_party=True,
            consent_required=True,
            provision_record=True,
            supervision_log=False,
            continuous=True,
            classes=_CONTRACT,
            consent_member="foreign_transfer_consent",
        ),
    )
}
# The bases of the insurer's notice's section 5, in its order.
SECTION_5 = (
    LegalBasis.LEGAL_OBLIGATION,
    LegalBasis.ENTRUSTMENT,
    LegalBasis.REINSURANCE,
    LegalBasis.INDUSTRY_EXCHANGE,
    LegalBasis.PROFESSIONAL,
)
# Never carried anywhere, whatever a policy says.
NEVER_PROVIDED = frozenset({FieldClass.SECRECY_OF_COMMUNICATIONS, FieldClass.CONSENT, FieldClass.METADATA})
