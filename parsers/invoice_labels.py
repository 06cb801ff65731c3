"""What invoices call their fields, in English, German, French, Polish, Hebrew,
Lithuanian, Indonesian, Spanish, Italian (and Dutch where it came free).

Patterns are regular expressions over FOLDED text (lower case, accents removed:
parsers.invoice_values.fold), each with a weight: how surely the label names the field
(a generic "total" is weaker than "total TTC" or "Bruttosumme")."""
from __future__ import annotations

import re

Labels = list[tuple[re.Pattern[str], float]]


def _labels(*groups: tuple[float, str]) -> Labels:
    out = []
    for weight, alternatives in groups:
        for alternative in alternatives.strip().split("\n"):
            alternative = alternative.strip()
            if alternative:
                # "\s*" also spans hyphens: Beleg-Nr, Rechnungs-Nr., sous-total
                alternative = alternative.replace(r"\s*", r"[\s\-]*")
                out.append((re.compile(r"(?<![\w\-])" + alternative + r"(?![\w])"), weight))
    return out


NUMBER = _labels(
    (1.0, r"""
        invoice\s*(?:no\.?|number|num\.?|nr\.?|#|n[°o]\.?)
        rechnungs?\s*-?\s*(?:nummer|nr\.?|no\.?)
        rechnung\s*(?:\(\d+\)\s*)?nr\.?
        handelsrechnung\s*(?:\(\d+\)\s*)?nr\.?
        (?:teil|schluss|abschlags|gut|korrektur)?rechnung[\w ]{0,12}\(\d+\)\s*nr\.?
        [\w\- ]{0,30}\(\d{3}\)\s*nr\.?
        facture\s*(?:n[°o]|num(?:ero)?\.?|nr)\.?
        n[°o]\s*(?:de\s*)?facture
        numero\s*de\s*facture
        numer\s*faktury
        faktura\s*(?:vat\s*)?(?:nr|numer)\.?
        faktura\s*vat\s*nr\.?
        saskaitos?\s*(?:faktūros\s*)?(?:nr\.?|numeris)
        saskaita\s*faktura\s*(?:nr\.?|serija\s*\w+\s*nr\.?)
        pvm\s*saskaita\s*faktura\s*(?:serija\s*\w+\s*)?nr\.?
        nomor\s*(?:faktur|invoice|tagihan)
        no\.?\s*(?:faktur|invoice)
        factura\s*(?:n[°ºo]\.?|num(?:ero)?\.?|no\.?)
        n[°ºo]\.?\s*(?:de\s*)?factura
        numero\s*(?:de\s*)?factura
        fattura\s*(?:n[°o]?\.?|num(?:ero)?\.?|nr\.?)
        numero\s*(?:di\s*)?fattura
        n\.\s*fattura
        factuur\s*(?:nummer|nr\.?)
        factuurnummer
        מספר\s*חשבונית
        חשבונית\s*(?:מס(?:'|׳|\.)?\s*)?(?:מספר)?
        קבלה\s*מספר
        invoice\s*id
        (?:avoir|credit\s*note|gutschrift|nota\s*kredytowa|faktura\s*korygujaca|korekta|kreditine\s*saskaita|nota\s*(?:kredit|de\s*credito|di\s*credito)|rechnungskorrektur)\s*(?:no\.?|nr\.?|n[°º]\.?|number|#)?
        bill\s*(?:no\.?|number)
        beleg\s*(?:nr\.?|nummer)
    """),
    (0.6, r"""
        invoice
        rechnung
        facture
        factuur
        faktura(?:\s*vat)?
        factura
        fattura
        nr\.?
        no\.?
        n[°º]
    """),
)

ISSUE_DATE = _labels(
    (1.0, r"""
        invoice\s*date
        beleg\s*datum
        date\s*of\s*(?:issue|invoice)
        issue\s*date
        date\s*issued
        rechnungsdatum
        belegdatum
        ausstellungsdatum
        date\s*(?:de\s*(?:la\s*)?)?facture(?!\s*associ)
        date\s*d'emission
        data\s*wystawienia
        data\s*faktury
        saskaitos\s*data
        israsymo\s*data
        tanggal\s*(?:faktur|invoice)
        tanggal
        fecha\s*(?:de\s*)?(?:factura|emision|expedicion)
        data\s*(?:della\s*)?fattura
        data\s*(?:di\s*)?emissione
        factuurdatum
        factuur\s*datum
        תאריך\s*(?:החשבונית|הפקה|חשבונית)?
    """),
    (0.8, r"""
        vom
        date
        datum
        fecha
        dated
        du
        data
    """),
)

CURRENCY = _labels(
    (1.0, r"""
        currency
        wahrung
        rechnungswahrung
        devise
        monnaie
        waluta
        valiuta
        mata\s*uang
        moneda
        divisa
        valuta
        מטבע
    """),
)

DUE_DATE = _labels(
    (1.0, r"""
        due\s*date
        payment\s*due(?:\s*date)?
        date\s*due
        pay(?:able)?\s*by
        fallig(?:keit(?:sdatum)?)?(?:\s*am)?
        zahlbar\s*bis
        zahlungsziel
        date\s*d'echeance
        echeance
        a\s*payer\s*avant\s*le
        termin\s*(?:platnosci|zaplaty)
        apmoketi\s*iki
        apmokejimo\s*terminas
        jatuh\s*tempo
        tanggal\s*jatuh\s*tempo
        fecha\s*de\s*vencimiento
        vencimiento
        (?:data\s*(?:di\s*)?)?scadenza
        vervaldatum
        uiterste\s*betaaldatum
        לתשלום\s*עד
        תאריך\s*(?:פירעון|תשלום)
    """),
)

NET = _labels(
    (1.0, r"""
        total\s*(?:excl\.?|excluding|before|without)\s*(?:vat|tax)
        (?:sub\s*-?\s*total|subtotal)
        net\s*(?:total|amount)
        total\s*net
        amount\s*(?:excl\.?|before)\s*(?:vat|tax)
        taxable\s*amount
        nettobetrag
        nettosumme
        summe\s*netto
        gesamt\s*netto
        netto\s*gesamt
        gesamtbetrag\s*(?:ohne|netto|exkl\.?)\s*(?:umsatzsteuer|ust\.?|mwst\.?)?
        rechnungssumme\s*(?:ohne|netto|exkl\.?)\s*(?:umsatzsteuer|ust\.?|mwst\.?)?
        summe\s*(?:ohne|exkl\.?)\s*(?:umsatzsteuer|ust\.?|mwst\.?)
        warenwert
        total\s*h\.?t\.?
        montant\s*h\.?t\.?
        total\s*hors\s*taxes?
        montant\s*hors\s*taxes?
        sous[\s-]*total
        wartosc\s*netto
        razem\s*netto
        suma\s*netto
        netto
        suma\s*be\s*pvm
        be\s*pvm
        jumlah\s*(?:sebelum\s*pajak|dpp)
        dasar\s*pengenaan\s*pajak
        dpp
        base\s*imponible
        total\s*sin\s*iva
        importe\s*neto
        imponibile
        totale\s*imponibile
        totale\s*netto
        subtotaal
        totaal\s*excl\.?\s*btw
        exclusief\s*btw
        excl\.?\s*btw
        grondslag
        סה"?כ\s*לפני\s*מע"?מ
        סכום\s*לפני\s*מע"?מ
        סה״כ\s*לפני\s*מע״מ
        ביניים
    """),
    (0.6, r"""
        net
        steuerbasis
        basisbetrag
        positionssumme
        summe\s*positionen
    """),
)

TAX = _labels(
    (1.0, r"""
        total\s*(?:vat|tax|gst)
        (?:vat|tax|gst|sales\s*tax)\s*(?:amount|total)
        total\s*taxes
        steuerbetrag(?:\s*in\s*\w+)?
        umsatzsteuerbetrag
        mehrwertsteuerbetrag
        summe\s*(?:umsatzsteuer|ust\.?|mwst\.?)
        gesamtbetrag\s*(?:der\s*)?(?:umsatzsteuer|ust\.?|mwst\.?)
        total\s*t\.?v\.?a\.?
        montant\s*(?:de\s*(?:la\s*)?)?t\.?v\.?a\.?
        total\s*taxes?
        kwota\s*vat
        wartosc\s*vat
        razem\s*vat
        suma\s*vat
        pvm\s*suma
        pvm\s*(?:\d+\s*%)?
        ppn(?:\s*\d+\s*%)?
        pajak
        (?:total\s*)?iva(?:\s*\d+\s*%)?
        cuota\s*(?:de\s*)?iva
        importo\s*iva
        totale\s*iva
        btw(?:\s*bedrag)?
        btw\s*\d+\s*%
        מע"?מ
        מע״מ
    """),
    (0.6, r"""
        vat
        tax
        gst
        ust\.?
        mwst\.?
        umsatzsteuer
        t\.?v\.?a\.?
        vat\s*\d+\s*%
        steuer
    """),
)

TOTAL = _labels(
    (1.0, r"""
        (?:grand\s*)?total\s*(?:incl\.?|including|with)\s*(?:vat|tax)
        invoice\s*total
        grand\s*total
        total\s*amount
        total\s*gross
        gross\s*(?:total|amount)
        bruttosumme
        bruttobetrag
        gesamtbetrag(?:\s*brutto)?(?!\s*der\s*(?:zu|ab)schl)
        rechnungsbetrag
        rechnungssumme(?:\s*brutto)?
        endbetrag
        summe\s*brutto
        gesamtsumme
        total\s*t\.?t\.?c\.?
        montant\s*t\.?t\.?c\.?
        total\s*toutes\s*taxes
        wartosc\s*brutto
        razem\s*brutto
        suma\s*brutto
        brutto
        (?:bendra\s*)?suma\s*su\s*pvm
        is\s*viso(?:\s*su\s*pvm)?
        viso\s*(?:moketi)?
        total\s*(?:tagihan|faktur)
        jumlah\s*(?:total|tagihan)
        grand\s*total
        total\s*(?:factura|con\s*iva)
        importe\s*total
        totale\s*(?:fattura|documento|complessivo)
        totaal\s*(?:incl\.?\s*btw)?
        factuur\s*totaal
        totaal\s*bedrag
        סה"?כ\s*(?:כולל\s*מע"?מ|לתשלום)?
        סה״כ\s*(?:כולל\s*מע״מ|לתשלום)?
        סך\s*הכל
    """),
    (0.7, r"""
        amount\s*due
        (?:due|total)\s*payable
        (?:amount|sum)\s*payable
        payable\s*amount
        montant\s*(?:a\s*payer|du)
        importe\s*a\s*pagar
        totale\s*da\s*pagare
        suma\s*do\s*zaplaty
        balance\s*due
        total\s*due
        zahlbetrag
        zu\s*zahlen
        net\s*a\s*payer
        a\s*payer
        do\s*zaplaty
        moketi
        total
        totale
        summe
        razem
        jumlah
    """),
)

SELLER = _labels(
    (1.0, r"""
        seller
        supplier
        vendor
        issued\s*by
        bill\s*from
        from
        verkaufer
        lieferant
        rechnungssteller
        leistungserbringer
        vendeur
        fournisseur
        emetteur
        sprzedawca
        wystawca
        pardavejas
        tiekejas
        penjual
        dari
        vendedor
        emisor
        proveedor
        fornitore
        cedente(?:\s*/\s*prestatore)?
        venditore
        leverancier
        מוכר
        ספק
        עוסק
    """),
)

BUYER = _labels(
    (1.0, r"""
        buyer
        bill\s*to
        billed\s*to
        invoice\s*to
        sold\s*to
        customer
        client
        kaufer(?:\s*/\s*leistungsempfanger)?
        rechnungsempfanger
        leistungsempfanger
        kunde
        auftraggeber
        acheteur
        destinataire
        facture\s*a
        adresse\s*du\s*client
        nabywca
        odbiorca
        pirkejas
        gavejas
        pembeli
        kepada
        ditagihkan\s*kepada
        comprador
        cliente
        facturar\s*a
        committente(?:\s*/\s*cessionario)?
        cessionario
        koper
        klant
        לקוח
        לכבוד
        קונה
    """),
)
