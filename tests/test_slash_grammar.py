"""The slash-command grammar: what a person types in Slack -> a typed command, or a
UsageError carrying the command's usage and, when there is one, the corrected form.
Pure: no database, no Slack."""
from __future__ import annotations

import re
from decimal import Decimal

import pytest

from parsers.slash import (
    USAGE,
    CollectStatement,
    GapsList,
    Help,
    InvoiceMarkPaid,
    InvoiceResend,
    LicenseReinstate,
    LicenseSuspend,
    LineSpec,
    Lookup,
    NameMatch,
    QuoteAddLine,
    QuoteDiscount,
    QuoteList,
    QuoteNew,
    QuoteSend,
    QuoteSigned,
    QuoteShow,
    QuoteVoid,
    UsageError,
    match_names,
    parse_collect,
    parse_deal,
    parse_gaps,
    parse_invoice,
    parse_license,
    parse_quote,
)

PARSERS = {
    "/quote": parse_quote, "/deal": parse_deal, "/invoice": parse_invoice,
    "/license": parse_license, "/collect": parse_collect, "/gaps": parse_gaps,
}
D = Decimal


def refused(command: str, text: str) -> UsageError:
    with pytest.raises(UsageError) as caught:
        PARSERS[command](text)
    return caught.value


def the_line(text: str) -> LineSpec:
    result = parse_quote(f"add Q-2026-0042 {text}")
    assert isinstance(result, QuoteAddLine)
    return result.line


# --- help -----------------------------------------------------------------------------


@pytest.mark.parametrize("command", sorted(PARSERS))
@pytest.mark.parametrize("text", ["", "   ", "help", "HELP", "?", "-h", "--help"])
def test_an_empty_or_help_text_shows_the_commands_usage(command, text):
    assert PARSERS[command](text) == Help(command)


@pytest.mark.parametrize("command", sorted(PARSERS))
def test_every_command_has_a_usage_text_with_examples(command):
    assert command in USAGE[command]
    assert "e.g." in USAGE[command]


def _usage_examples(command: str) -> list[str]:
    return [ex for ex in re.findall(r"`([^`]*)`", USAGE[command])
            if ex.startswith(command + " ") and not re.search(r"[<\[|]", ex)]


@pytest.mark.parametrize("command", sorted(PARSERS))
def test_every_example_in_the_usage_is_itself_accepted(command):
    examples = _usage_examples(command)
    assert examples, f"{command} has no concrete examples"
    for example in examples:
        result = PARSERS[command](example)
        assert not isinstance(result, Help), example


@pytest.mark.parametrize(("text", "expected"), [
    ("/quote list", QuoteList()),                       # a pasted command name is dropped
    ("  SHOW    q-2026-0042  ", QuoteShow("Q-2026-0042")),
    ("Q-2026-0042", QuoteShow("Q-2026-0042")),          # a bare quote number shows it
    ("show help", Help("/quote")),
])
def test_quote_subcommands_are_case_and_space_insensitive(text, expected):
    assert parse_quote(text) == expected


# --- money ----------------------------------------------------------------------------


@pytest.mark.parametrize(("price", "amount", "currency", "per"), [
    ("€40", "40", "EUR", None),
    ("40€", "40", "EUR", None),
    ("40 EUR", "40", "EUR", None),
    ("EUR 40", "40", "EUR", None),
    ("40 eur", "40", "EUR", None),
    ("$45.50", "45.50", "USD", None),
    ("£10", "10", "GBP", None),
    ("¥4000", "4000", "JPY", None),
    ("40 zł", "40", "PLN", None),
    ("PLN 40", "40", "PLN", None),
    ("₪40", "40", "ILS", None),
    ("1,500.00", "1500.00", None, None),
    ("1.500,00 EUR", "1500.00", "EUR", None),
    ("40,50 €", "40.50", "EUR", None),
    ("0.125", "0.125", None, None),
    ("40/mo", "40", None, "month"),
    ("40/month", "40", None, "month"),
    ("40/m", "40", None, "month"),
    ("40 per month", "40", None, "month"),
    ("€40 a month", "40", "EUR", "month"),
    ("40 EUR/mo", "40", "EUR", "month"),
    ("$480/yr", "480", "USD", "year"),
    ("480/year", "480", None, "year"),
    ("480/y", "480", None, "year"),
    ("480 per year", "480", None, "year"),
])
def test_a_price_after_an_at_sign_is_a_unit_price_override(price, amount, currency, per):
    line = the_line(f"25 x PRO-SEAT @ {price}")
    assert isinstance(line.unit_price, Decimal)
    assert (line.unit_price, line.price_currency, line.per) == (D(amount), currency, per)


def test_a_price_with_a_euro_sign_and_a_month_is_a_monthly_override():
    line = the_line("25 seats PRO-SEAT at €40 per month")
    assert line == LineSpec("PRO-SEAT", D(25), D("40.00"), "EUR", "month")


@pytest.mark.parametrize(("price", "complaint"), [
    ("40 ABC", "'ABC'"),          # not a currency
    ("€40 USD", "two currencies"),
    ("40/week", "'week'"),        # only month or year
    ("1,5000", "'1,5000'"),       # neither thousands nor a decimal comma
    ("-40", "'-40'"),
    ("forty", "'forty'"),
])
def test_an_unreadable_price_is_refused_naming_the_part(price, complaint):
    error = refused("/quote", f"add Q-1 25 x PRO-SEAT @ {price}")
    assert complaint in error.message
    assert error.usage == USAGE["/quote"]


# --- quantities and SKUs --------------------------------------------------------------


@pytest.mark.parametrize(("text", "sku", "quantity"), [
    ("25 x PRO-SEAT", "PRO-SEAT", "25"),
    ("25x PRO-SEAT", "PRO-SEAT", "25"),
    ("25 × PRO-SEAT", "PRO-SEAT", "25"),
    ("PRO-SEAT x 25", "PRO-SEAT", "25"),
    ("pro-seat x25", "PRO-SEAT", "25"),
    ("25 seats PRO-SEAT", "PRO-SEAT", "25"),
    ("25 user licenses pro-seat", "PRO-SEAT", "25"),
    ("25 PRO-SEAT", "PRO-SEAT", "25"),
    ("2.5 GB STORAGE", "STORAGE", "2.5"),
    ("2,5GB storage", "STORAGE", "2.5"),
    ("1,000 x api.calls", "API.CALLS", "1000"),
    ("10 hours TRAINING_V2", "TRAINING_V2", "10"),
    ("ONBOARDING", "ONBOARDING", "1"),
])
def test_a_line_reads_its_quantity_and_upper_cased_sku_in_any_order(text, sku, quantity):
    assert the_line(text) == LineSpec(sku, D(quantity))


@pytest.mark.parametrize(("text", "complaint"), [
    ("25 x", "'25 x'"),
    ("0 x PRO-SEAT", "more than zero"),
    ("25 x PRO SEAT", "'SEAT'"),
    ("x 25", "'x 25'"),
    ("25 x PRO-SEAT @", "no price"),
    ("PRO-SEAT x 25 apples", "'apples'"),
])
def test_a_malformed_line_is_refused_naming_the_part_it_could_not_read(text, complaint):
    error = refused("/quote", f"add Q-1 {text}")
    assert complaint in error.message
    assert error.usage == USAGE["/quote"]


# --- percentages ----------------------------------------------------------------------


@pytest.mark.parametrize(("text", "basis_points"), [
    ("10%", 1000),
    ("10 %", 1000),
    ("12.5%", 1250),
    ("12,5%", 1250),
    ("10 percent", 1000),
    ("by 7.25%", 725),
    ("100%", 10000),
    ("0%", 0),
])
def test_a_quote_discount_is_kept_in_basis_points(text, basis_points):
    assert parse_quote(f"discount Q-2026-0042 {text}") == QuoteDiscount("Q-2026-0042", basis_points)


def test_a_discount_may_name_the_percentage_before_the_quote():
    assert parse_quote("discount 15% q-7") == QuoteDiscount("Q-7", 1500)


@pytest.mark.parametrize(("text", "complaint"), [
    ("150%", "at most 100%"),
    ("-5%", "cannot be negative"),
    ("12.345%", "two decimals"),
    ("ten%", "'ten%'"),
])
def test_a_discount_over_a_hundred_or_negative_is_refused(text, complaint):
    assert complaint in refused("/quote", f"discount Q-2026-0042 {text}").message


def test_a_discount_without_a_percent_sign_is_refused_with_the_percent_form_suggested():
    error = refused("/quote", "discount Q-2026-0042 10")
    assert error.suggestion == "/quote discount Q-2026-0042 10%"


# --- /quote new ------------------------------------------------------------------------

SEAT = LineSpec("PRO-SEAT", D(25))


@pytest.mark.parametrize(("text", "expected"), [
    ("new", QuoteNew(customer=None)),
    ("new Acme", QuoteNew(customer="Acme")),
    ("new Acme GmbH", QuoteNew(customer="Acme GmbH")),
    ("new Acme GmbH 25 seats PRO-SEAT @ 40/mo, 1 ONBOARDING discount 10%",
     QuoteNew("Acme GmbH", lines=(LineSpec("PRO-SEAT", D(25), D(40), None, "month"), LineSpec("ONBOARDING", D(1))),
              discount_bp=1000)),
    ('new "3M Europe" in USD 10 x PRO-SEAT valid 45 days terms 14 days',
     QuoteNew("3M Europe", currency="USD", lines=(LineSpec("PRO-SEAT", D(10)),), valid_days=45, terms_days=14)),
    ("new “3M Europe” 25 x PRO-SEAT", QuoteNew("3M Europe", lines=(SEAT,))),
    ("new 3M Europe 25 x PRO-SEAT", QuoteNew("3M Europe", lines=(SEAT,))),
    ("new Acme: PRO-SEAT x 25", QuoteNew("Acme", lines=(SEAT,))),
    ("new for Acme Sp. z o.o. PRO-SEAT x 25", QuoteNew("Acme Sp. z o.o.", lines=(SEAT,))),
    ("NEW   acme   25x pro-seat", QuoteNew("acme", lines=(SEAT,))),
    ("new Acme 25 x PRO-SEAT and 2.5 GB STORAGE; 1 ONBOARDING + 3 hours TRAINING",
     QuoteNew("Acme", lines=(SEAT, LineSpec("STORAGE", D("2.5")), LineSpec("ONBOARDING", D(1)),
                             LineSpec("TRAINING", D(3))))),
    ("new Acme 25 x PRO-SEAT @ 1.500,00 EUR/yr, 1 ONBOARDING @ €1,200.00",
     QuoteNew("Acme", lines=(LineSpec("PRO-SEAT", D(25), D(1500), "EUR", "year"),
                             LineSpec("ONBOARDING", D(1), D(1200), "EUR")))),
    ("new Acme 25 x PRO-SEAT terms net 30 valid for 2 weeks",
     QuoteNew("Acme", lines=(SEAT,), terms_days=30, valid_days=14)),
    ("new Acme 25 x PRO-SEAT net30 12.5% off", QuoteNew("Acme", lines=(SEAT,), terms_days=30, discount_bp=1250)),
    ("new Acme in eur discount 5%", QuoteNew("Acme", currency="EUR", discount_bp=500)),
    ("new Smith &amp; Sons 25 x PRO-SEAT", QuoteNew("Smith & Sons", lines=(SEAT,))),
    ("new Made in USA Inc 25 x PRO-SEAT", QuoteNew("Made in USA Inc", lines=(SEAT,))),
])
def test_a_new_quote_reads_customer_currency_lines_and_terms(text, expected):
    assert parse_quote(text) == expected


@pytest.mark.parametrize(("text", "complaint"), [
    ("new 25 x PRO-SEAT", "which customer"),
    ("new 99 Bottles 25 x PRO-SEAT", "quotes"),
    ("new Acme 25 x PRO-SEAT 3 x STORAGE", "'3 x STORAGE'"),
    ("new Acme 25 x PRO-SEAT @ €40, 1 ONBOARDING @ $100", "one currency"),
    ("new Acme in USD 25 x PRO-SEAT @ €40", "in USD"),
    ("new Acme 25 x PRO-SEAT discount 150%", "at most 100%"),
    ("new Acme 25 x PRO-SEAT discount 10% discount 5%", "twice"),
    ("new Acme 25 x PRO-SEAT valid 0 days", "at least 1 day"),
    ("new Acme 25 x PRO-SEAT terms soon", "'terms soon'"),
])
def test_a_new_quote_that_cannot_be_read_is_refused(text, complaint):
    error = refused("/quote", text)
    assert complaint in error.message
    assert error.usage == USAGE["/quote"]


def test_a_new_quote_discount_without_percent_suggests_the_whole_corrected_command():
    error = refused("/quote", "new Acme 25 x PRO-SEAT discount 10 valid 30 days")
    assert error.suggestion == "/quote new Acme 25 x PRO-SEAT discount 10% valid 30 days"


# --- the other /quote subcommands --------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("add Q-2026-0042 5 PRO-SEAT", QuoteAddLine("Q-2026-0042", LineSpec("PRO-SEAT", D(5)))),
    ("add 5 x PRO-SEAT to q-2026-42", QuoteAddLine("Q-2026-42", LineSpec("PRO-SEAT", D(5)))),
    ("add D-12 5 x PRO-SEAT @38/mo", QuoteAddLine("D-12", LineSpec("PRO-SEAT", D(5), D(38), None, "month"))),
    ("show 42", QuoteShow("42")),
    ("send Q-2026-0042", QuoteSend("Q-2026-0042")),
    ("send Q-2026-0042 via email", QuoteSend("Q-2026-0042", "email")),
    ("send q-2026-0042 via DocuSign", QuoteSend("Q-2026-0042", "docusign")),
    ("send Q-2026-0042 by e-mail", QuoteSend("Q-2026-0042", "email")),
    ("void Q-2026-0042 customer went with a competitor",
     QuoteVoid("Q-2026-0042", "customer went with a competitor")),
    ("cancel Q-1 duplicate", QuoteVoid("Q-1", "duplicate")),
    ("list", QuoteList()),
])
def test_quote_subcommands_read_the_quote_reference_upper_cased(text, expected):
    assert parse_quote(text) == expected


@pytest.mark.parametrize(("text", "complaint", "suggestion"), [
    ("void Q-2026-0042", "reason", None),
    ("void", "which quote", None),
    ("send Q-1 via fax", "email or docusign", None),
    ("send Q-1 via docsign", "email or docusign", "/quote send Q-1 via docusign"),
    ("show", "which quote", None),
    ("show Acme", "not a quote number", None),
    ("show Q-1 Q-2", "'Q-2'", "/quote show Q-1"),
    ("list open", "nothing after", "/quote list"),
    ("add Q-1 5 x PRO-SEAT, 1 ONBOARDING", "one line at a time", "/quote add Q-1 5 x PRO-SEAT"),
    ("add Q-1", "what should be added", None),
])
def test_a_quote_subcommand_missing_its_arguments_is_refused(text, complaint, suggestion):
    error = refused("/quote", text)
    assert complaint in error.message
    assert error.suggestion == suggestion


@pytest.mark.parametrize(("text", "suggestion"), [
    ("sned Q-1", "/quote send Q-1"),
    ("SHWO Q-2026-0042", "/quote show Q-2026-0042"),
    ("dicsount Q-1 10%", "/quote discount Q-1 10%"),
    ("lst", "/quote list"),
    ("vodi Q-1 lost", "/quote void Q-1 lost"),
    ("Acme 25 x PRO-SEAT", "/quote new Acme 25 x PRO-SEAT"),
    ("frobnicate", None),
])
def test_an_unknown_quote_subcommand_suggests_the_closest_valid_form(text, suggestion):
    error = refused("/quote", text)
    assert error.suggestion == suggestion
    assert error.usage == USAGE["/quote"]


# --- /deal, /invoice, /license, /collect ------------------------------------------------


@pytest.mark.parametrize(("command", "text", "expected"), [
    ("/deal", "Acme GmbH", Lookup("/deal", "Acme GmbH")),
    ("/deal", "q-2026-0042", Lookup("/deal", "Q-2026-0042")),
    ("/deal", "  d-12 ", Lookup("/deal", "D-12")),
    ("/deal", '"3M Europe"', Lookup("/deal", "3M Europe")),
    ("/invoice", "inv-2026-000042", Lookup("/invoice", "INV-2026-000042")),
    ("/license", "Acme", Lookup("/license", "Acme")),
    ("/license", "Suspenders Inc", Lookup("/license", "Suspenders Inc")),
    ("/collect", "Acme GmbH", Lookup("/collect", "Acme GmbH")),
    ("/collect", "Stateman Ltd", Lookup("/collect", "Stateman Ltd")),
])
def test_a_lookup_keeps_the_customer_as_typed_and_upper_cases_numbers(command, text, expected):
    assert PARSERS[command](text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("resend INV-2026-000042", InvoiceResend("INV-2026-000042")),
    ("paid inv-2026-000042", InvoiceMarkPaid("INV-2026-000042")),
    ("paid INV-2026-000042 1500", InvoiceMarkPaid("INV-2026-000042", D(1500))),
    ("paid INV-2026-000042 €1,500.00 ref BANK-7781", InvoiceMarkPaid("INV-2026-000042", D(1500), "BANK-7781")),
    ("paid INV-2026-000042 1.234,56 EUR", InvoiceMarkPaid("INV-2026-000042", D("1234.56"))),
    ("mark paid INV-7 ref: SEPA 2026/03/10", InvoiceMarkPaid("INV-7", None, "SEPA 2026/03/10")),
    ("Paid INV-7 ref:AB-1", InvoiceMarkPaid("INV-7", None, "AB-1")),
])
def test_an_invoice_can_be_resent_or_marked_paid_with_amount_and_reference(text, expected):
    assert parse_invoice(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("suspend 7 invoice 60 days overdue", LicenseSuspend(7, "invoice 60 days overdue")),
    ("SUSPEND #7: chargeback", LicenseSuspend(7, "chargeback")),
    ("reinstate 7 paid in full", LicenseReinstate(7, "paid in full")),
    ("unsuspend 12 card updated", LicenseReinstate(12, "card updated")),
])
def test_a_license_is_suspended_or_reinstated_by_id_with_a_reason(text, expected):
    assert parse_license(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("statement Acme GmbH", CollectStatement("Acme GmbH")),
    ('Statement "3M Europe"', CollectStatement("3M Europe")),
])
def test_a_statement_is_sent_for_a_customer(text, expected):
    assert parse_collect(text) == expected


@pytest.mark.parametrize(("command", "text", "complaint", "suggestion"), [
    ("/invoice", "resend", "which invoice", None),
    ("/invoice", "paid INV-1 0", "more than zero", None),
    ("/invoice", "paid INV-1 40/mo", "no period", None),
    ("/invoice", "paid INV-1 1500 ref", "which reference", None),
    ("/invoice", "resnd INV-2026-000042", "resend", "/invoice resend INV-2026-000042"),
    ("/license", "suspend 7", "needs a reason", None),
    ("/license", "reinstate 7", "needs a reason", None),
    ("/license", "suspend L-7 overdue", "is a number", None),
    ("/license", "suspnd 7 overdue", "suspend", "/license suspend 7 overdue"),
    ("/collect", "statement", "whose statement", None),
    ("/collect", "statment Acme", "statement", "/collect statement Acme"),
])
def test_a_lookup_command_refuses_a_missing_id_amount_or_reason(command, text, complaint, suggestion):
    error = refused(command, text)
    assert complaint in error.message
    assert error.suggestion == suggestion
    assert error.usage == USAGE[command]


# --- /gaps ----------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("mine", GapsList()),
    ("ALL", GapsList(scope="all")),
    ("all rule missing-po", GapsList("all", rule="missing-po")),
    ("customer Acme GmbH", GapsList(customer="Acme GmbH")),
    ("all customer Acme GmbH rule missing-po", GapsList("all", "missing-po", "Acme GmbH")),
    ('rule overdue customer "All Star Ltd" all', GapsList("all", "overdue", "All Star Ltd")),
])
def test_gaps_default_to_mine_and_filter_by_rule_and_customer(text, expected):
    assert parse_gaps(text) == expected


@pytest.mark.parametrize(("text", "complaint", "suggestion"), [
    ("al", "'all'", "/gaps all"),
    ("mine custmer Acme", "'customer'", "/gaps mine customer Acme"),
    ("Acme", "'Acme'", "/gaps customer Acme"),
    ("mine all", "mine or all", "/gaps mine"),
    ("rule", "which rule", None),
    ("customer", "which customer", None),
])
def test_gaps_refuses_what_it_cannot_read_and_suggests_the_option(text, complaint, suggestion):
    error = refused("/gaps", text)
    assert complaint in error.message
    assert error.suggestion == suggestion
    assert error.usage == USAGE["/gaps"]


# --- matching customer names ------------------------------------------------------------

CUSTOMERS = ["Acme GmbH", "Acme Industries Ltd", "Globex Corporation", "Initech Inc", "Initrode BV",
             "Müller & Söhne AG", "Łódź Software Sp. z o.o.", "Umbrella SA"]


@pytest.mark.parametrize(("query", "exact"), [
    ("acme gmbh", "Acme GmbH"),                    # exact, case-insensitively
    ("ACME GMBH", "Acme GmbH"),
    ("globex", "Globex Corporation"),              # suffix and case ignored
    ("glob", "Globex Corporation"),                # a unique prefix
    ("muller & sohne", "Müller & Söhne AG"),       # accents ignored
    ("lodz software", "Łódź Software Sp. z o.o."),
    ("umbrella", "Umbrella SA"),
    ("Globx", "Globex Corporation"),               # one clearly-best fuzzy match
    ("initech", "Initech Inc"),
])
def test_a_name_that_clearly_means_one_customer_matches_it(query, exact):
    assert match_names(query, CUSTOMERS) == NameMatch(exact, (exact,))


def test_acme_matches_acme_gmbh_despite_the_company_suffix():
    assert match_names("acme", ["Acme GmbH", "Globex Ltd"]) == NameMatch("Acme GmbH", ("Acme GmbH",))


@pytest.mark.parametrize(("query", "candidates"), [
    ("acme", ("Acme GmbH", "Acme Industries Ltd")),
    ("init", ("Initech Inc", "Initrode BV")),
])
def test_a_name_that_fits_several_customers_asks_with_a_pick_list(query, candidates):
    assert match_names(query, CUSTOMERS) == NameMatch(None, candidates)


def test_the_pick_list_is_best_first_and_at_most_the_limit():
    names = ["Nordwind AG", "Nordwind Logistics", "Nordwind Energy", "Nordwind Retail"]
    result = match_names("nordwind", names, limit=2)
    assert result == NameMatch(None, ("Nordwind AG", "Nordwind Logistics"))


@pytest.mark.parametrize("query", ["Zephyr Holdings", "xyz", ""])
def test_a_name_like_no_customer_matches_nothing(query):
    assert match_names(query, CUSTOMERS) == NameMatch(None, ())


# --- the module's own examples ---------------------------------------------------------


@pytest.mark.parametrize(("command", "text"), [
    ("/quote", "new Acme GmbH 25 seats PRO-SEAT @ 40/mo, 1 ONBOARDING discount 10%"),
    ("/quote", 'new "3M Europe" in USD 10 x PRO-SEAT valid 45 days terms 14 days'),
    ("/quote", "add Q-2026-0042 5 PRO-SEAT"),
    ("/quote", "discount Q-2026-0042 12.5%"),
    ("/quote", "void Q-2026-0042 customer went with a competitor"),
    ("/invoice", "paid INV-2026-000042 1500 ref BANK-REF"),
    ("/license", "reinstate 7 paid"),
    ("/gaps", "all rule missing-po customer Acme"),
])
def test_the_documented_examples_are_accepted(command, text):
    assert not isinstance(PARSERS[command](text), Help)


@pytest.mark.parametrize("text,expected", [
    ("signed Q-2026-0042 signed on paper, scan in the CRM",
     QuoteSigned("Q-2026-0042", "signed on paper, scan in the CRM")),
    ("SIGNED q-2026-0042: wet ink, filed", QuoteSigned("Q-2026-0042", "wet ink, filed")),
])
def test_a_manager_can_record_a_signature_received_elsewhere(text, expected):
    assert parse_quote(text) == expected


@pytest.mark.parametrize("text,needle", [
    ("signed", "which quote"),
    ("signed Q-2026-0042", "say where the signed copy is"),
])
def test_recording_a_signature_needs_the_quote_and_a_note(text, needle):
    with pytest.raises(UsageError, match=needle):
        parse_quote(text)
