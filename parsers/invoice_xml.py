"""Structured e-invoice XML, read exactly: UN/CEFACT CII (Factur-X, ZUGFeRD 2.x,
XRechnung-CII), ZUGFeRD 1.0's CrossIndustryDocument, and OASIS UBL 2.x Invoice/CreditNote.

Elements are found by local name, so the namespace variants of the profiles all read
alike. The parser refuses entities and network access (XXE)."""
from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal, InvalidOperation

from lxml import etree

from parsers.invoice_model import FIELDS, ExtractedInvoice, InvoiceLine
from parsers.pdf_errors import PdfError, PdfErrorCode

_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False, load_dtd=False)


def _all(node: etree._Element, path: str) -> list[etree._Element]:
    """path like 'A/B//C' in local names ('//' = any depth)."""
    xpath = "." + "".join(f"{'//' if step.startswith('/') else '/'}*[local-name()='{step.strip('/')}']"
                          for step in re.findall(r"/?[^/]+", path))
    return node.xpath(xpath)


def _text(node: etree._Element, path: str) -> str | None:
    for found in _all(node, path):
        if found.text and found.text.strip():
            return " ".join(found.text.split())
    return None


def _money(node: etree._Element, path: str, currency: str | None = None) -> Decimal | None:
    found = [n for n in _all(node, path) if n.text and n.text.strip()]
    if currency:   # TaxTotalAmount can be given twice: in invoice and in accounting currency
        found = [n for n in found if n.get("currencyID") in (None, currency)] or found
    try:
        return Decimal(found[0].text.strip()) if found else None
    except InvalidOperation:
        return None


def _date(raw: str | None) -> date | None:
    if not raw:
        return None
    raw = raw.strip()
    for pattern in ("%Y%m%d", "%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"):
        try:
            return datetime.strptime(raw[:len(datetime(2000, 1, 1).strftime(pattern))], pattern).date()
        except ValueError:
            continue
    return None


def parse_invoice_xml(data: bytes) -> ExtractedInvoice:
    try:
        root = etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError as error:
        raise PdfError(PdfErrorCode.MALFORMED, f"the embedded invoice XML is not well-formed: {error}") from None
    kind = etree.QName(root).localname
    if kind in ("CrossIndustryInvoice", "CrossIndustryDocument") or "uncefact" in (etree.QName(root).namespace or ""):
        invoice = _cii(root)
    elif kind in ("Invoice", "CreditNote"):
        invoice = _ubl(root)
    else:
        raise PdfError(PdfErrorCode.MALFORMED, f"the embedded XML is no invoice format we know ({kind})")
    invoice.confidence = {name: 1.0 if getattr(invoice, name) is not None else 0.0 for name in FIELDS}
    return invoice


def _party_vat(party: etree._Element | None) -> str | None:
    if party is None:
        return None
    for registration in _all(party, "SpecifiedTaxRegistration/ID"):
        if registration.get("schemeID") == "VA" and registration.text:
            return registration.text.strip()
    return None


def _first(node: etree._Element, path: str) -> etree._Element | None:
    found = _all(node, path)
    return found[0] if found else None


def _either(*nodes: etree._Element | None) -> etree._Element | None:
    return next((node for node in nodes if node is not None), None)   # an element's truth is its child count


def _cii(root: etree._Element) -> ExtractedInvoice:
    header = _either(_first(root, "ExchangedDocument"), _first(root, "HeaderExchangedDocument"))
    seller, buyer = _first(root, "/SellerTradeParty"), _first(root, "/BuyerTradeParty")
    currency = _text(root, "/InvoiceCurrencyCode")
    summation = _either(_first(root, "/SpecifiedTradeSettlementHeaderMonetarySummation"),
                        _first(root, "/ApplicableHeaderTradeSettlement/SpecifiedTradeSettlementMonetarySummation"),
                        _first(root, "/ApplicableSupplyChainTradeSettlement/SpecifiedTradeSettlementMonetarySummation"))
    lines = []
    for item in _all(root, "/IncludedSupplyChainTradeLineItem"):
        lines.append(InvoiceLine(
            description=_text(item, "/SpecifiedTradeProduct/Name") or "",
            quantity=_money(item, "/BilledQuantity"),
            unit_price=_money(item, "/NetPriceProductTradePrice/ChargeAmount"),
            amount=_money(item, "/LineTotalAmount")))
    return ExtractedInvoice(
        source="xml",
        number=_text(header, "ID") if header is not None else None,
        issue_date=_date(_text(header, "IssueDateTime/DateTimeString") or _text(header, "IssueDateTime")) if header is not None else None,
        due_date=_date(_text(root, "/SpecifiedTradePaymentTerms/DueDateDateTime/DateTimeString")
                       or _text(root, "/SpecifiedTradePaymentTerms/DueDateDateTime")),
        seller=_text(seller, "Name") if seller is not None else None,
        buyer=_text(buyer, "Name") if buyer is not None else None,
        seller_vat_id=_party_vat(seller), buyer_vat_id=_party_vat(buyer),
        currency=currency,
        net=_money(summation, "TaxBasisTotalAmount") if summation is not None else None,
        tax=_money(summation, "TaxTotalAmount", currency) if summation is not None else None,
        total=_money(summation, "GrandTotalAmount") if summation is not None else None,
        iban=_text(root, "/PayeePartyCreditorFinancialAccount/IBANID"),
        lines=lines)


def _ubl(root: etree._Element) -> ExtractedInvoice:
    def party(role: str) -> tuple[str | None, str | None]:
        node = _first(root, f"{role}/Party")
        if node is None:
            return None, None
        name = _text(node, "PartyName/Name") or _text(node, "PartyLegalEntity/RegistrationName")
        return name, _text(node, "PartyTaxScheme/CompanyID")
    seller, seller_vat = party("AccountingSupplierParty")
    buyer, buyer_vat = party("AccountingCustomerParty")
    currency = _text(root, "DocumentCurrencyCode")
    totals = _first(root, "LegalMonetaryTotal")
    lines = [InvoiceLine(description=_text(line, "Item/Name") or "",
                         quantity=_money(line, "InvoicedQuantity") or _money(line, "CreditedQuantity"),
                         unit_price=_money(line, "Price/PriceAmount"),
                         amount=_money(line, "LineExtensionAmount"))
             for line in _all(root, "InvoiceLine") + _all(root, "CreditNoteLine")]
    return ExtractedInvoice(
        source="xml", number=_text(root, "ID"), issue_date=_date(_text(root, "IssueDate")),
        due_date=_date(_text(root, "DueDate") or _text(root, "PaymentMeans/PaymentDueDate")),
        seller=seller, buyer=buyer, seller_vat_id=seller_vat, buyer_vat_id=buyer_vat, currency=currency,
        net=_money(totals, "TaxExclusiveAmount") if totals is not None else None,
        tax=_money(root, "TaxTotal/TaxAmount", currency),
        total=_money(totals, "TaxInclusiveAmount") if totals is not None else None,
        iban=_text(root, "PaymentMeans/PayeeFinancialAccount/ID"), lines=lines)
