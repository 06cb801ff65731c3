"""The invoice as Factur-X / ZUGFeRD EN 16931 XML (UN/CEFACT Cross Industry Invoice),
so an accounting system imports it exactly instead of reading the page. Amounts come
from the ledger's integer minor units; the tax breakdown is the ledger's own
(flows/money.py computes it the EN 16931 way), so the XML and the page agree."""
from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from lxml import etree

from adapters.pdf_render.layout import Company
from flows.documents import InvoiceDocument
from flows.money import Money, round_half_up

RSM = "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100"
RAM = "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100"
UDT = "urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100"
QDT = "urn:un:unece:uncefact:data:standard:QualifiedDataType:100"
EN16931 = "urn:cen.eu:en16931:2017"
_NS = {"rsm": RSM, "ram": RAM, "udt": UDT, "qdt": QDT}


def invoice_xml(invoice: InvoiceDocument, company: Company) -> bytes:
    root = etree.Element(f"{{{RSM}}}CrossIndustryInvoice", nsmap=_NS)
    context = _sub(root, "rsm", "ExchangedDocumentContext")
    _sub(_sub(context, "ram", "GuidelineSpecifiedDocumentContextParameter"), "ram", "ID", EN16931)
    document = _sub(root, "rsm", "ExchangedDocument")
    _sub(document, "ram", "ID", invoice.number)
    _sub(document, "ram", "TypeCode", "380")  # commercial invoice
    _date(_sub(document, "ram", "IssueDateTime"), invoice.issued_on)

    transaction = _sub(root, "rsm", "SupplyChainTradeTransaction")
    money = _amounts(invoice.currency)
    for line in invoice.lines:
        item = _sub(transaction, "ram", "IncludedSupplyChainTradeLineItem")
        _sub(_sub(item, "ram", "AssociatedDocumentLineDocument"), "ram", "LineID", str(line.position))
        _sub(_sub(item, "ram", "SpecifiedTradeProduct"), "ram", "Name", line.description)
        agreement = _sub(item, "ram", "SpecifiedLineTradeAgreement")
        _sub(_sub(agreement, "ram", "NetPriceProductTradePrice"),
             "ram", "ChargeAmount", money(line.unit_amount))
        _sub(_sub(item, "ram", "SpecifiedLineTradeDelivery"), "ram", "BilledQuantity",
             _quantity(line.quantity), unitCode="C62")  # C62: "one" (a unit without a dimension)
        settlement = _sub(item, "ram", "SpecifiedLineTradeSettlement")
        _vat(_sub(settlement, "ram", "ApplicableTradeTax"), line.tax_rate_bp)
        if line.period_start and line.period_end:
            period = _sub(settlement, "ram", "BillingSpecifiedPeriod")
            _date(_sub(period, "ram", "StartDateTime"), line.period_start)
            _date(_sub(period, "ram", "EndDateTime"), line.period_end - timedelta(days=1))  # BT-135 is inclusive
        allowance = _line_gross(line.unit_amount, line.quantity) - line.net
        if allowance:  # the quote's discount, as a line allowance (BG-27)
            charge = _sub(settlement, "ram", "SpecifiedTradeAllowanceCharge")
            _sub(_sub(charge, "ram", "ChargeIndicator"), "udt", "Indicator", "false")
            _sub(charge, "ram", "ActualAmount", money(allowance))
            _sub(charge, "ram", "Reason", "Discount")
        _sub(_sub(settlement, "ram", "SpecifiedTradeSettlementLineMonetarySummation"), "ram", "LineTotalAmount",
             money(line.net))

    agreement = _sub(transaction, "ram", "ApplicableHeaderTradeAgreement")
    if invoice.quote_number:
        _sub(agreement, "ram", "BuyerReference", invoice.quote_number)
    seller = _sub(agreement, "ram", "SellerTradeParty")
    _sub(seller, "ram", "Name", company.name)
    address = _sub(seller, "ram", "PostalTradeAddress")
    if company.address:
        _sub(address, "ram", "LineOne", company.address[0])
    _sub(address, "ram", "CountryID", company.country)
    if company.email:
        uri = _sub(seller, "ram", "URIUniversalCommunication")
        _sub(uri, "ram", "URIID", company.email, schemeID="EM")
    if company.vat_id:
        _sub(_sub(seller, "ram", "SpecifiedTaxRegistration"), "ram", "ID", company.vat_id, schemeID="VA")
    buyer = _sub(agreement, "ram", "BuyerTradeParty")
    _sub(buyer, "ram", "Name", invoice.customer.name)
    _sub(_sub(buyer, "ram", "PostalTradeAddress"), "ram", "CountryID", invoice.customer.country)
    if invoice.customer.tax_id:
        _sub(_sub(buyer, "ram", "SpecifiedTaxRegistration"), "ram", "ID", invoice.customer.tax_id, schemeID="VA")

    _sub(transaction, "ram", "ApplicableHeaderTradeDelivery")

    settlement = _sub(transaction, "ram", "ApplicableHeaderTradeSettlement")
    _sub(settlement, "ram", "PaymentReference", invoice.number)
    _sub(settlement, "ram", "InvoiceCurrencyCode", invoice.currency)
    means = _sub(settlement, "ram", "SpecifiedTradeSettlementPaymentMeans")
    _sub(means, "ram", "TypeCode", "58" if company.iban else "1")  # 58: SEPA credit transfer; 1: not defined
    if company.iban:
        _sub(_sub(means, "ram", "PayeePartyCreditorFinancialAccount"), "ram", "IBANID", company.iban.replace(" ", ""))
    for tax in invoice.taxes:
        applicable = _sub(settlement, "ram", "ApplicableTradeTax")
        _sub(applicable, "ram", "CalculatedAmount", money(tax.tax))
        _sub(applicable, "ram", "TypeCode", "VAT")
        _sub(applicable, "ram", "BasisAmount", money(tax.taxable))
        _sub(applicable, "ram", "CategoryCode", "S" if tax.rate_bp else "Z")
        _sub(applicable, "ram", "RateApplicablePercent", _percent(tax.rate_bp))
    terms = _sub(settlement, "ram", "SpecifiedTradePaymentTerms")
    _date(_sub(terms, "ram", "DueDateDateTime"), invoice.due_on)
    summary = _sub(settlement, "ram", "SpecifiedTradeSettlementHeaderMonetarySummation")
    _sub(summary, "ram", "LineTotalAmount", money(invoice.net))
    _sub(summary, "ram", "TaxBasisTotalAmount", money(invoice.net))
    _sub(summary, "ram", "TaxTotalAmount", money(invoice.tax), currencyID=invoice.currency)
    _sub(summary, "ram", "GrandTotalAmount", money(invoice.gross))
    if invoice.amount_paid:
        _sub(summary, "ram", "TotalPrepaidAmount", money(invoice.amount_paid))
    _sub(summary, "ram", "DuePayableAmount", money(invoice.balance))
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def _sub(parent: etree._Element, prefix: str, name: str, text: str | None = None,
         **attributes: str) -> etree._Element:
    element = etree.SubElement(parent, f"{{{_NS[prefix]}}}{name}", **attributes)
    if text is not None:
        element.text = text
    return element


def _date(parent: etree._Element, day: date) -> None:
    _sub(parent, "udt", "DateTimeString", day.strftime("%Y%m%d"), format="102")


def _vat(parent: etree._Element, rate_bp: int) -> None:
    _sub(parent, "ram", "TypeCode", "VAT")
    _sub(parent, "ram", "CategoryCode", "S" if rate_bp else "Z")
    _sub(parent, "ram", "RateApplicablePercent", _percent(rate_bp))


def _amounts(currency: str):  # type: ignore[no-untyped-def]
    def text(minor: int) -> str:
        return str(Money(minor, currency).to_decimal())
    return text


def _line_gross(unit_amount: int, quantity: Decimal) -> int:
    return round_half_up(Decimal(unit_amount) * quantity)


def _quantity(value: Decimal) -> str:
    return format(value.normalize(), "f") if value == value.to_integral() else format(value, "f")


def _percent(rate_bp: int) -> str:
    return format((Decimal(rate_bp) / 100).quantize(Decimal("0.01")), "f")
