"""Invoice PDFs rendered with fpdf2 in nine languages and two layouts, with the values
the extractor must read back; and a Factur-X PDF (the `factur-x` library) embedding a
CII XML written here."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path

from fpdf import FPDF

FONT = next((p for p in ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
                         "/usr/share/fonts/dejavu/DejaVuSans.ttf") if Path(p).exists()), None)


@dataclass(frozen=True)
class Language:
    code: str
    number: str
    issued: str
    due: str
    seller: str
    buyer: str
    net: str
    tax: str
    total: str
    description: str
    quantity: str
    unit_price: str
    amount: str
    money: str          # "{}" gets the formatted amount
    decimal: str
    group: str
    date: str           # strftime pattern, or "month-name"
    months: tuple[str, ...] = ()
    currency: str = "EUR"


LANGUAGES = {
    "en": Language("en", "Invoice No.", "Invoice date", "Due date", "Seller", "Bill to", "Subtotal", "VAT 20%",
                   "Total amount", "Description", "Qty", "Unit price", "Amount", "${}", ".", ",", "month-name",
                   ("January", "February", "March", "April", "May", "June", "July", "August", "September",
                    "October", "November", "December"), "USD"),
    "de": Language("de", "Rechnungsnummer", "Rechnungsdatum", "Fällig am", "Verkäufer", "Rechnungsempfänger",
                   "Nettobetrag", "MwSt. 19 %", "Gesamtbetrag", "Beschreibung", "Menge", "Einzelpreis", "Betrag",
                   "{} €", ",", ".", "%d.%m.%Y"),
    "fr": Language("fr", "Facture N°", "Date de facture", "Date d'échéance", "Fournisseur", "Client", "Total HT",
                   "TVA 20 %", "Total TTC", "Désignation", "Qté", "Prix unitaire", "Montant", "{} €", ",", " ",
                   "%d/%m/%Y"),
    "pl": Language("pl", "Faktura VAT nr", "Data wystawienia", "Termin płatności", "Sprzedawca", "Nabywca",
                   "Wartość netto", "Kwota VAT", "Wartość brutto", "Nazwa", "Ilość", "Cena jedn.", "Wartość",
                   "{} zł", ",", " ", "month-name",
                   ("stycznia", "lutego", "marca", "kwietnia", "maja", "czerwca", "lipca", "sierpnia", "września",
                    "października", "listopada", "grudnia"), "PLN"),
    "he": Language("he", "מספר חשבונית", "תאריך", "לתשלום עד", "ספק", "לקוח", 'סה"כ לפני מע"מ', 'מע"מ 17%',
                   'סה"כ לתשלום', "תיאור", "כמות", "מחיר", "סכום", "₪ {}", ".", ",", "%d/%m/%Y", currency="ILS"),
    "lt": Language("lt", "Sąskaitos faktūros Nr.", "Išrašymo data", "Apmokėti iki", "Pardavėjas", "Pirkėjas",
                   "Suma be PVM", "PVM 21 %", "Iš viso su PVM", "Pavadinimas", "Kiekis", "Kaina", "Suma",
                   "{} EUR", ",", " ", "%Y-%m-%d"),
    "id": Language("id", "Nomor Faktur", "Tanggal Faktur", "Jatuh Tempo", "Penjual", "Pembeli",
                   "Dasar Pengenaan Pajak", "PPN 11%", "Total Tagihan", "Deskripsi", "Jumlah", "Harga Satuan",
                   "Total", "Rp {}", ",", ".", "month-name",
                   ("Januari", "Februari", "Maret", "April", "Mei", "Juni", "Juli", "Agustus", "September",
                    "Oktober", "November", "Desember"), "IDR"),
    "es": Language("es", "Factura Nº", "Fecha de emisión", "Vencimiento", "Emisor", "Cliente", "Base imponible",
                   "IVA 21 %", "Total factura", "Descripción", "Cantidad", "Precio", "Importe", "{} €", ",", ".",
                   "%d/%m/%Y"),
    "it": Language("it", "Fattura n.", "Data fattura", "Scadenza", "Fornitore", "Cliente", "Imponibile",
                   "IVA 22%", "Totale documento", "Descrizione", "Quantità", "Prezzo unitario", "Importo",
                   "€ {}", ",", ".", "%d/%m/%Y"),
}


@dataclass(frozen=True)
class Expected:
    number: str
    issue_date: date
    due_date: date
    seller: str
    buyer: str
    currency: str
    net: Decimal
    tax: Decimal
    total: Decimal
    iban: str
    seller_vat_id: str
    lines: int


def _amount(language: Language, value: Decimal) -> str:
    whole, frac = f"{value:.2f}".split(".")
    groups = []
    while len(whole) > 3:
        groups.insert(0, whole[-3:])
        whole = whole[:-3]
    groups.insert(0, whole)
    return language.money.format(language.group.join(groups) + language.decimal + frac)


def _date(language: Language, value: date) -> str:
    if language.date == "month-name":
        month = language.months[value.month - 1]
        return f"{month} {value.day}, {value.year}" if language.code == "en" else f"{value.day} {month} {value.year}"
    return value.strftime(language.date)


def invoice(code: str, layout: str = "inline") -> tuple[bytes, Expected]:
    """An invoice in language `code`; layout "inline" (label then value on a line) or
    "columns" (a totals table: labels as column heads, values underneath)."""
    language = LANGUAGES[code]
    rows = [("Consulting services, March", Decimal(12), Decimal("95.50")),
            ("Annual licence renewal", Decimal(1), Decimal("1250.00"))]
    net = sum((q * p for _, q, p in rows), Decimal("0"))
    rate = {"en": 20, "de": 19, "fr": 20, "pl": 23, "he": 17, "lt": 21, "id": 11, "es": 21, "it": 22}[code]
    tax = (net * rate / 100).quantize(Decimal("0.01"))
    expected = Expected(number=f"{code.upper()}-2026/0{rate}", issue_date=date(2026, 3, 9), due_date=date(2026, 4, 8),
                        seller=f"Nordwind Analytics {code.upper()} Ltd", buyer="Kestrel Logistics SA",
                        currency=language.currency, net=net, tax=tax, total=net + tax,
                        iban="DE89370400440532013000", seller_vat_id="DE136695976", lines=len(rows))
    pdf = FPDF(format="A4")
    pdf.add_page()
    pdf.add_font("DejaVu", fname=FONT)
    pdf.set_font("DejaVu", size=10)

    def at(x: float, y: float, text: str, size: float = 10) -> None:
        pdf.set_font("DejaVu", size=size)
        pdf.set_xy(x, y)
        pdf.cell(text=text)

    at(15, 15, expected.seller, 16)
    at(15, 30, language.seller, 9)
    at(15, 35, expected.seller)
    at(15, 40, "Hafenstraße 12, 20457 Hamburg")
    at(15, 45, "VAT DE136695976")
    at(115, 30, language.buyer, 9)
    at(115, 35, expected.buyer)
    at(115, 40, "Rue du Marché 4, 1000 Bruxelles")
    at(15, 60, f"{language.number}: {expected.number}")
    at(15, 66, f"{language.issued}: {_date(language, expected.issue_date)}")
    at(15, 72, f"{language.due}: {_date(language, expected.due_date)}")
    y = 90
    for x, head in ((15, language.description), (110, language.quantity), (130, language.unit_price),
                    (165, language.amount)):
        at(x, y, head, 9)
    for description, quantity, price in rows:
        y += 7
        at(15, y, description)
        at(110, y, str(quantity))
        at(130, y, _amount(language, price))
        at(165, y, _amount(language, quantity * price))
    y += 16
    if layout == "inline":
        for label, value in ((language.net, net), (language.tax, tax), (language.total, net + tax)):
            at(110, y, label)
            at(165, y, _amount(language, value))
            y += 7
    else:
        for x, label in ((80, language.net), (120, language.tax), (160, language.total)):
            at(x, y, label, 9)
        for x, value in ((80, net), (120, tax), (160, net + tax)):
            at(x, y + 6, _amount(language, value))
        y += 14
    at(15, y + 15, "IBAN: DE89 3704 0044 0532 0130 00   BIC: COBADEFFXXX")
    return bytes(pdf.output()), expected


CII = """<?xml version="1.0" encoding="UTF-8"?>
<rsm:CrossIndustryInvoice xmlns:rsm="urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100"
  xmlns:ram="urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100"
  xmlns:udt="urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100"
  xmlns:qdt="urn:un:unece:uncefact:data:standard:QualifiedDataType:100">
 <rsm:ExchangedDocumentContext>
  <ram:GuidelineSpecifiedDocumentContextParameter><ram:ID>urn:cen.eu:en16931:2017#compliant#urn:factur-x.eu:1p0:basic</ram:ID></ram:GuidelineSpecifiedDocumentContextParameter>
 </rsm:ExchangedDocumentContext>
 <rsm:ExchangedDocument>
  <ram:ID>FX-2026-0007</ram:ID><ram:TypeCode>380</ram:TypeCode>
  <ram:IssueDateTime><udt:DateTimeString format="102">20260309</udt:DateTimeString></ram:IssueDateTime>
 </rsm:ExchangedDocument>
 <rsm:SupplyChainTradeTransaction>
  <ram:IncludedSupplyChainTradeLineItem>
   <ram:AssociatedDocumentLineDocument><ram:LineID>1</ram:LineID></ram:AssociatedDocumentLineDocument>
   <ram:SpecifiedTradeProduct><ram:Name>Annual licence</ram:Name></ram:SpecifiedTradeProduct>
   <ram:SpecifiedLineTradeAgreement><ram:NetPriceProductTradePrice><ram:ChargeAmount>1250.00</ram:ChargeAmount></ram:NetPriceProductTradePrice></ram:SpecifiedLineTradeAgreement>
   <ram:SpecifiedLineTradeDelivery><ram:BilledQuantity unitCode="C62">1</ram:BilledQuantity></ram:SpecifiedLineTradeDelivery>
   <ram:SpecifiedLineTradeSettlement>
    <ram:ApplicableTradeTax><ram:TypeCode>VAT</ram:TypeCode><ram:CategoryCode>S</ram:CategoryCode><ram:RateApplicablePercent>19</ram:RateApplicablePercent></ram:ApplicableTradeTax>
    <ram:SpecifiedTradeSettlementLineMonetarySummation><ram:LineTotalAmount>1250.00</ram:LineTotalAmount></ram:SpecifiedTradeSettlementLineMonetarySummation>
   </ram:SpecifiedLineTradeSettlement>
  </ram:IncludedSupplyChainTradeLineItem>
  <ram:ApplicableHeaderTradeAgreement>
   <ram:SellerTradeParty><ram:Name>Nordwind Analytics GmbH</ram:Name>
    <ram:PostalTradeAddress><ram:CountryID>DE</ram:CountryID></ram:PostalTradeAddress>
    <ram:SpecifiedTaxRegistration><ram:ID schemeID="VA">DE136695976</ram:ID></ram:SpecifiedTaxRegistration>
   </ram:SellerTradeParty>
   <ram:BuyerTradeParty><ram:Name>Kestrel Logistics SA</ram:Name>
    <ram:PostalTradeAddress><ram:CountryID>BE</ram:CountryID></ram:PostalTradeAddress>
   </ram:BuyerTradeParty>
  </ram:ApplicableHeaderTradeAgreement>
  <ram:ApplicableHeaderTradeDelivery/>
  <ram:ApplicableHeaderTradeSettlement>
   <ram:InvoiceCurrencyCode>EUR</ram:InvoiceCurrencyCode>
   <ram:SpecifiedTradeSettlementPaymentMeans><ram:TypeCode>58</ram:TypeCode>
    <ram:PayeePartyCreditorFinancialAccount><ram:IBANID>DE89370400440532013000</ram:IBANID></ram:PayeePartyCreditorFinancialAccount>
   </ram:SpecifiedTradeSettlementPaymentMeans>
   <ram:ApplicableTradeTax><ram:CalculatedAmount>237.50</ram:CalculatedAmount><ram:TypeCode>VAT</ram:TypeCode><ram:BasisAmount>1250.00</ram:BasisAmount><ram:CategoryCode>S</ram:CategoryCode><ram:RateApplicablePercent>19</ram:RateApplicablePercent></ram:ApplicableTradeTax>
   <ram:SpecifiedTradePaymentTerms><ram:DueDateDateTime><udt:DateTimeString format="102">20260408</udt:DateTimeString></ram:DueDateDateTime></ram:SpecifiedTradePaymentTerms>
   <ram:SpecifiedTradeSettlementHeaderMonetarySummation>
    <ram:LineTotalAmount>1250.00</ram:LineTotalAmount>
    <ram:TaxBasisTotalAmount>1250.00</ram:TaxBasisTotalAmount>
    <ram:TaxTotalAmount currencyID="EUR">237.50</ram:TaxTotalAmount>
    <ram:GrandTotalAmount>1487.50</ram:GrandTotalAmount>
    <ram:DuePayableAmount>1487.50</ram:DuePayableAmount>
   </ram:SpecifiedTradeSettlementHeaderMonetarySummation>
  </ram:ApplicableHeaderTradeSettlement>
 </rsm:SupplyChainTradeTransaction>
</rsm:CrossIndustryInvoice>
"""


def facturx_invoice(page_total: str = "1.487,50 €") -> bytes:
    """A Factur-X BASIC invoice: our CII XML (checked against the library's XSD) embedded
    into a one-page PDF. The page may say something else than the XML (page_total): the
    XML path must read the XML, exactly."""
    import facturx

    pdf = FPDF(format="A4")
    pdf.add_page()
    pdf.add_font("DejaVu", fname=FONT)
    pdf.set_font("DejaVu", size=11)
    for y, text in ((20, "Nordwind Analytics GmbH"), (40, "Rechnung Nr. FX-2026-0007 vom 09.03.2026"),
                    (60, f"Gesamtbetrag {page_total}")):
        pdf.set_xy(15, y)
        pdf.cell(text=text)
    return facturx.generate_from_binary(bytes(pdf.output()), CII.encode(), check_xsd=True)
