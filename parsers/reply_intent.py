"""What a customer's reply asks for, from multilingual keyword rules.

The first rule that fires wins, in this order: asks to stop (unsubscribe) — a signed
document — a payment made / remittance advice — a purchase order — a change request —
a question — other. Attachment names weigh in for the document kinds ("quote_signed.pdf",
"podpisana_oferta.pdf", "PO-1042.pdf", "remittance.pdf"). Text is matched lower-cased
with accents kept (Polish/Lithuanian words differ by them)."""
from __future__ import annotations

import re


def _any(*patterns: str) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)


UNSUBSCRIBE = _any(
    r"\bunsubscribe\b", r"\bopt[ -]?out\b", r"stop (?:sending|emailing|contacting)", r"remove (?:me|us) from",
    r"(?:do not|don't) (?:email|contact|send) (?:me|us)", r"take (?:me|us) off",
    r"\babmelden\b", r"keine (?:e-?mails|nachrichten) mehr", r"austragen",                   # de
    r"d[ée]sabonner", r"d[ée]sinscri", r"ne plus (?:me )?(?:recevoir|envoyer|contacter)",       # fr
    r"darme de baja", r"dar(?:se|me|nos) de baja", r"dejar de recibir", r"no (?:me|nos) env[íi]en", # es
    r"cancelar (?:la )?suscripci[óo]n", r"descadastrar", r"n[ãa]o (?:me )?enviem",              # es, pt
    r"disiscriv", r"annulla(?:re)? (?:l'|la )?iscrizione", r"non (?:mi |ci )?inviate pi[uù]",   # it
    r"\bafmelden\b", r"uitschrijven", r"geen (?:e-?mails|berichten) meer",                      # nl
    r"wypisz", r"wypisać", r"nie wysyłaj(?:cie|cie mi)?", r"rezygnuj[ęe] z (?:subskrypcji|newslettera)",  # pl
    r"atsisakyti (?:prenumeratos|naujienlaiškio)", r"nebesiųskite", r"nesiųskite (?:man|mums)",  # lt
    r"berhenti berlangganan", r"jangan (?:kirim|mengirim)(?:kan)? (?:email|surel|pesan)? ?lagi",  # id
    r"hapus (?:saya|kami) dari",
    r"отпи[сш]\w*", r"не (?:присылайте|отправляйте|пишите) (?:мне|нам)",    # ru
    r"הסר(?:ו)? אותי", r"להסיר אותי", r"הסרה מרשימ", r"אל תשלחו", r"תפסיקו לשלוח",               # he
    r"avregistrera", r"afmeld", r"meld (?:meg|mig) av",                                          # sv, da, no
)

_SIGNED_WORDS = (
    r"signed", r"countersigned", r"e-?signed", r"unterschrieben", r"unterzeichnet", r"sign[ée]e?s?",
    r"firmad[oa]s?", r"firmat[oa]", r"assinad[oa]s?", r"getekend", r"ondertekend", r"podpisan[aeyi]?\w*",
    r"pasira[šs]yt\w*", r"ditandatangani", r"bertanda ?tangan", r"подписан\w*", r"подписал\w*", r"חתו[םמ]\w*",
    r"החתו[םמ]\w*", r"undertecknad", r"underskrevet", r"underskrivet", r"allekirjoitettu", r"imzal[ıi]",
)
_SIGNED = r"(?:" + "|".join(_SIGNED_WORDS) + r")"
SIGNED_ATTACHMENT = re.compile(r"(?:^|[\W_])" + _SIGNED + r"(?:$|[\W_])", re.IGNORECASE)
_DOCUMENT = (r"(?:quote|quotation|offer|contract|agreement|order|proposal|document|copy|"
             r"angebot|vertrag|auftrag|devis|contrat|offre|cotizaci[óo]n|presupuesto|contrato|oferta|offerta|preventivo|"
             r"contratto|offerte|contract|umow[aęy]|ofert[ęay]|sutart[įi]s?|pasiūlym\w*|penawaran|kontrak|perjanjian|"
             r"договор\w*|предложени\w+|коммерческое|счёт|הצעה|חוזה|ההצעה|החוזה|avtal|offert)")
SIGNED_TEXT = _any(
    _SIGNED + r"\s+(?:\w+\s+){0,3}" + _DOCUMENT,
    _DOCUMENT + r"\s+(?:\S+\s+)?" + _SIGNED + r"(?!\w)",
    r"(?:i|we) (?:have |'ve )?(?:just )?(?:signed|countersigned|e-?signed)",
    r"(?:attached|enclosed|here) (?:is|are) (?:the |our |my )?(?:\w+ )?" + _SIGNED,
    r"please find (?:attached )?(?:the |our )?" + _SIGNED,
    r"habe(?:n)? (?:das |den |die )?(?:\w+ )?(?:unterschrieben|unterzeichnet)", r"anbei (?:\w+ ){0,3}unterschrieben",
    r"(?:j'ai|nous avons) sign[ée]", r"ci-joint (?:\w+ ){0,3}sign[ée]",
    r"(?:he|hemos) firmado", r"adjunt(?:o|amos) (?:\w+ ){0,3}firmad[oa]",
    r"(?:ho|abbiamo) firmato", r"in allegato (?:\w+ ){0,3}firmat[oa]",
    r"(?:heb|hebben) (?:\w+ ){0,3}(?:getekend|ondertekend)", r"(?:assinei|assinamos)",
    r"podpisa(?:łem|łam|liśmy|łyśmy|na|ną|ny|ne)", r"pasira[šs](?:iau|ėme|yta|ytą|yt[ąa]s)",
    r"(?:sudah|telah) (?:kami |saya )?(?:tanda ?tangani|ditandatangani)", r"подписал(?:и|а)?\b",
    r"חתמנו", r"חתמתי", r"(?:mitä |har |jeg har )?(?:undertecknat|underskrevet)",
)

PAYMENT_TEXT = _any(
    r"remittance", r"payment (?:has been |was |is )?(?:sent|made|transferred|initiated|processed|released|"
    r"completed|done|scheduled)", r"(?:we|i) (?:have |'ve )?(?:just )?(?:paid|transferred|wired|settled|sent (?:the|a|our) payment)",
    r"proof of payment", r"payment confirmation", r"wire (?:transfer )?(?:confirmation|receipt)",
    r"zahlungsavis", r"überwiesen", r"zahlung (?:ist |wurde )?(?:erfolgt|veranlasst|ausgeführt)", r"bezahlt",
    r"virement (?:a été |est )?(?:effectu[ée]|envoy[ée]|réalis[ée])", r"avis de (?:paiement|virement)",
    r"(?:avons|ai) (?:pay[ée]|r[ée]gl[ée]|vir[ée])", r"paiement (?:a été |est )?effectu[ée]",
    r"pago (?:realizado|efectuado|enviado)", r"(?:hemos|he) (?:pagado|transferido|abonado)",
    r"transferencia (?:realizada|enviada|efectuada)", r"comprobante de (?:pago|transferencia)",
    r"pagamento (?:effettuato|eseguito|inviato|realizado|efetuado)", r"(?:abbiamo|ho) (?:pagato|saldato)",
    r"bonifico (?:effettuato|eseguito|disposto)", r"comprovante de pagamento", r"(?:pagamos|paguei)",
    r"betaling (?:is )?(?:verricht|gedaan|uitgevoerd|verstuurd)", r"(?:hebben|heb) (?:\w+ ){0,3}(?:betaald|overgemaakt)",
    r"zapłacil(?:iśmy|am|em)|zapłaciliśmy", r"przelew (?:został )?(?:wykonany|zlecony|wysłany)",
    r"potwierdzenie (?:przelewu|płatności|zapłaty)", r"opłacon[ya]", r"płatność (?:została )?(?:wykonana|zrealizowana)",
    r"sumokėjome|sumokėjau", r"apmokėt[aą]", r"mokėjimo (?:patvirtinimas|pavedimas)", r"pavedimą",
    r"(?:sudah|telah) (?:kami |saya )?(?:bayar|transfer|dibayar|ditransfer|lunasi|lunas)",
    r"bukti (?:pembayaran|transfer|bayar)", r"pembayaran (?:sudah|telah) (?:dilakukan|dikirim)",
    r"оплатили|оплатил[аи]?\b", r"оплачен[оа]?", r"платёжн\w+ поручени\w+|платежн\w+ поручени\w+", r"перевели (?:деньги|оплату|сумму)",
    r"שילמנו|שילמתי", r"התשלום (?:בוצע|הועבר|נשלח)", r"העברנו (?:את )?(?:התשלום|הכסף)", r"אישור (?:תשלום|העברה)",
    r"betalat|betalt|maksettu|ödeme (?:yapıldı|gönderildi)",
)
PAYMENT_ATTACHMENT = _any(r"remittance", r"payment[\W_]*(?:advice|confirmation|proof|receipt)", r"zahlungsavis",
                          r"avis[\W_]*de[\W_]*(?:paiement|virement)", r"comprobante", r"bukti[\W_]*(?:transfer|bayar|pembayaran)",
                          r"potwierdzenie[\W_]*(?:przelewu|płatności)", r"платеж|платёж", r"swift[\W_]*(?:copy|mt103)", r"mt103")

_PO_WORDS = (r"purchase[\W_]*order", r"(?-i:\bP\.?O\.?)(?=[\W_]*(?:#|no\b|number|nr\b|\d))", r"bestellung", r"auftragsbest[äa]tigung",
             r"bon[\W_]*de[\W_]*commande", r"orden[\W_]*de[\W_]*compra", r"ordine[\W_]*d[i']?[\W_]*acquisto",
             r"pedido[\W_]*de[\W_]*compra", r"inkooporder", r"bestelbon", r"zam[óo]wieni\w*", r"u[žz]sakym\w*",
             r"pesanan[\W_]*pembelian", r"(?-i:PO)(?![a-z])", r"заказ[\W_]*на[\W_]*(?:закупку|поставку)", r"הזמנת[\W_]*רכש",
             r"ink[öo]psorder", r"indkøbsordre", r"ostotilaus", r"satın[\W_]*alma[\W_]*sipari[şs]i")
PO_ATTACHMENT = re.compile(r"(?:^|[\W_])(?:" + "|".join(_PO_WORDS) + r")", re.IGNORECASE)
PO_TEXT = _any(r"purchase order", r"(?-i:\bPO\b)",
               r"bestellung", r"bon de commande", r"orden de compra", r"ordine d[i']\s?acquisto", r"pedido de compra",
               r"inkooporder", r"zamówieni[ea] (?:nr|numer|zakupu)", r"zamówienie", r"užsakym(?:as|ą|o)",
               r"pesanan pembelian", r"заказ на (?:закупку|поставку)", r"הזמנת רכש", r"inköpsorder", r"indkøbsordre")

CHANGE_TEXT = _any(
    r"\b(?:change|update|modify|adjust|amend|revise|correct|switch)\b (?:the|our|my|it|this|that|to|from|us)\b",
    r"\binstead of\b", r"\brather than\b", r"\b(?:change|modify|adjust|amend)\b",
    r"\b(?:add|remove|drop|reduce|increase|decrease|lower)\b (?:\w+ ){0,3}(?:seats?|licen[cs]es?|users?|units?|"
    r"quantity|items?|lines?|discount|price|months?|years?|plan)", r"(?:different|new|another) (?:quantity|price|plan|term|date|address)",
    r"(?:could|can) (?:you|we) (?:get|have|make) (?:it|this|the)? ?(?:\w+ )?(?:cheaper|lower|higher|bigger|smaller)",
    r"ändern|änderung|anpassen|stattdessen|\bstatt\b", r"modifier|changer|au lieu de|plutôt que|corriger",
    r"cambiar|modificar|en lugar de|en vez de|actualizar|alterar|em vez de|mudar",
    r"cambiare|modificare|invece di|aggiornare", r"wijzigen|aanpassen|in plaats van|veranderen",
    r"zmieni[ćc]|zmian[aęy]|zamiast|poprawi[ćc]|zaktualizowa[ćc]", r"pakeisti|pakeitim\w*|vietoj|atnaujinti|pataisyti",
    r"\b(?:mengubah|ubah|ganti|mengganti|perbarui|revisi)\b|alih-alih|sebagai gantinya",
    r"измени(?:ть|те)|поменя(?:ть|йте)|вместо|исправ(?:ить|ьте)|скорректир", r"לשנות|שינוי|במקום|לעדכן|תיקון",
    r"ändra|istället för|endre|ændre|i stedet for|muuttaa|değiştir",
)
QUESTION_TEXT = _any(
    r"\?", r"^\s*(?:could|can|would|will|do|does|did|is|are|when|what|how|why|where|which|who)\b.*",
    r"\b(?:wondering|let me know|please advise|please confirm|any update)\b",
    r"\b(?:können|könnten|wann|warum|wie|gibt es)\b", r"\b(?:est-ce que|pourriez|pouvez|quand|comment|pourquoi)\b",
    r"¿", r"\b(?:podría|puede|cuándo|cómo|por qué)\b", r"\b(?:potete|potreste|quando|come|perché)\b",
    r"\b(?:kunt u|kunnen jullie|wanneer|waarom|hoe)\b", r"^\s*czy\b|\b(?:kiedy|dlaczego|jak)\b",
    r"^\s*ar\b|\b(?:kada|kodėl|kaip)\b", r"\b(?:apakah|kapan|bagaimana|mengapa|bisakah)\b",
    r"\bли\b|\b(?:когда|почему|как|можно ли)\b", r"\bהאם\b|\b(?:מתי|למה|איך)\b",
)

_URL = re.compile(r"(?:https?://|www\.)\S+")
# "We have NOT paid", "nie podpisaliśmy", "noch nicht unterschrieben": a negation just
# before the words turns a claim into its opposite.
_NEGATION = re.compile(
    r"(?:\bnot|n't|\bnever|\bnicht|\bkein\w*|\bpas|\bno|\bnon|\bnão|\bniet|\bgeen|\bnie|\bne|\bdar ne|"
    r"\btidak|\bbelum|\bbukan|\bне|\bещё не|\bлא|\bלא|\bטרם|\binte|\bikke|\bei|\byet to)\W+(?:\w+\W+)?$",
    re.IGNORECASE)


def _claims(pattern: re.Pattern[str], text: str) -> bool:
    """Does `pattern` occur somewhere without a negation right before it?"""
    return any(not _NEGATION.search(text[max(0, m.start() - 30):m.start()]) for m in pattern.finditer(text))


def _normalized_name(name: str) -> str:
    return name.rsplit("/", 1)[-1]


def intent_of(body: str, subject: str = "", attachment_names: tuple[str, ...] = ()) -> str:
    text = _URL.sub(" ", body or "")
    subject = subject or ""
    subject_clean = re.sub(r"^\s*(?:(?:re|aw|sv|vs|odp|ats|antw|r|rif|réf|fwd?|wg|tr|ynt|השב|הועבר|ответ)\s*:\s*)+",
                           "", subject, flags=re.IGNORECASE)
    names = [_normalized_name(n) for n in attachment_names]
    pdfs = [n for n in names if n.lower().endswith(".pdf")]
    words = f"{subject_clean}\n{text}"
    if UNSUBSCRIBE.search(words):
        return "unsubscribe"
    if any(SIGNED_ATTACHMENT.search(n) for n in names) or _claims(SIGNED_TEXT, text) \
            or pdfs and _claims(SIGNED_TEXT, subject_clean):
        return "signed_document"
    if _claims(PAYMENT_TEXT, words) or any(PAYMENT_ATTACHMENT.search(n) for n in names):
        return "payment_sent"
    if any(PO_ATTACHMENT.search(n) for n in names) or PO_TEXT.search(words) and (names or _attached(text)):
        return "purchase_order"
    if CHANGE_TEXT.search(text):
        return "change_request"
    if any(QUESTION_TEXT.search(line) for line in text.splitlines()):
        return "question"
    if PO_TEXT.search(words):
        return "purchase_order"
    return "other"


_ATTACHED = _any(r"attach", r"enclos", r"anbei|anhang|beigefügt", r"ci-joint|pi[èe]ce jointe|en pi[èe]ce",
                 r"adjunt", r"in allegato|allegat", r"anexo|em anexo", r"bijgevoegd|bijlage", r"w załącznik|załączam|przesyłam",
                 r"priede|prisegu|pridedu|siunčiu", r"terlampir|lampiran|kami kirim", r"во вложении|прилагаю|направляем|отправляем",
                 r"מצורף|מצורפת|מצ\"ב|בקובץ", r"bifogat|vedhæftet|vedlagt|liitteenä|ekte")


def _attached(text: str) -> bool:
    return bool(_ATTACHED.search(text))
