"""The words mail clients write around quoted history, in many languages.

Tables only (no logic), so that adding a language is adding a row. Each table says
which client text it matches; the matching itself lives in `reply_quotes`."""
from __future__ import annotations

import re

# Bidi and zero-width marks that Gmail/Outlook wrap around names and dates in
# right-to-left locales (Hebrew, Arabic) and around dates in Windows Mail.
INVISIBLE = re.compile("[\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")

# The verb at the end of an attribution line: "On <date>, <name> wrote:".
WROTE_VERBS = [
    r"wrote", r"writes", r"sent", r"said",                       # en
    r"schrieb", r"geschrieben",                                  # de
    r"a [ée]crit", r"[ée]crit",                                  # fr
    r"escribi[óo]", r"escribe",                                  # es
    r"escreveu",                                                 # pt
    r"ha scritto", r"scrisse",                                   # it
    r"schreef", r"het volgende geschreven", r"geschreven",       # nl
    r"napisa[łl]\s*\(a\)", r"napisa[łl]a?", r"pisze",            # pl
    r"ra[šs][ėe]",                                               # lt
    r"menulis",                                                  # id
    r"написал\s*\(а\)", r"написала?", r"пишет", r"написав\s*\(ла\)", r"написав", r"пише",  # ru, uk
    r"כתב\S*", r"כתבה",                                          # he
    r"skrev",                                                    # sv, da, no
    r"kirjoitti",                                                # fi
    r"yazd[ıi]",                                                 # tr
    r"napsal\s*\(a\)", r"napsala?",                              # cs
    r"đã viết",                                                  # vi
    r"写道", r"寫道", r"님이 작성",                               # zh, ko
]
WROTE = r"(?:" + "|".join(WROTE_VERBS) + r")"

# Words an attribution line starts with (before the date): On/Le/Am/El/Em/Il/Op/…
INTRO_WORDS = [
    r"On", r"Le", r"Am", r"El", r"Em", r"Il", r"Op", r"W dniu", r"Dnia", r"Den", r"På",
    r"Pada", r"Vào", r"Dne", r"בתאריך", r"ב-?\d", r"Kom", r"Tanggal",
]
INTRO = r"(?:" + "|".join(INTRO_WORDS) + r")"

# "-----Original Message-----" and friends: a reply's quoted history starts here.
ORIGINAL_MESSAGE = [
    r"original message", r"reply message", r"ursprüngliche nachricht", r"original-nachricht",
    r"antwort nachricht", r"oprindelig meddelelse", r"message d'origine", r"message original",
    r"mensaje original", r"mensagem original", r"messaggio originale", r"oorspronkelijk bericht",
    r"origineel bericht", r"originalmeddelande", r"ursprungligt meddelande", r"opprinnelig melding",
    r"wiadomość oryginalna", r"oryginalna wiadomość", r"исходное сообщение", r"оригинальное сообщение",
    r"pradinis laiškas", r"originalus laiškas", r"originali žinutė", r"pesan asli", r"pesan awal",
    r"הודעה מקורית", r"alkuperäinen viesti", r"původní zpráva", r"orijinal ileti", r"özgün ileti",
    r"tin nhắn gốc",
]
# A forward: the text after it is what the sender is sending us, not history.
FORWARDED = [
    r"forwarded message", r"forwarded e-?mail", r"weitergeleitete nachricht", r"message transf[ée]r[ée]",
    r"mensaje reenviado", r"mensagem encaminhada", r"messaggio inoltrato", r"doorgestuurd bericht",
    r"wiadomość przekazana dalej", r"przekazana wiadomość", r"пересылаемое сообщение",
    r"пересланное сообщение", r"persiųstas laiškas", r"peradresuotas laiškas", r"pesan yang diteruskan",
    r"pesan terusan", r"הודעה שהועברה", r"vidarebefordrat meddelande", r"videresendt meddelelse",
    r"videresendt melding", r"välitetty viesti", r"iletilen ileti", r"přeposlaná zpráva",
]
# Apple Mail's forward line, no dashes: "Begin forwarded message:".
FORWARD_INTRO = [
    r"begin forwarded message", r"début du message réexpédié", r"anfang der weitergeleiteten nachricht",
    r"inicio del mensaje reenviado", r"início da mensagem reencaminhada", r"inizio messaggio inoltrato",
    r"begin doorgestuurd bericht", r"начало переадресованного сообщения", r"początek przekazanej wiadomości",
]

# Header fields of an Outlook-style "From: … Sent: … To: … Subject: …" block, by the
# field's role. Field names are matched case-insensitively, with optional *bold* marks.
HEADER_FIELDS = {
    "from": ["from", "von", "de", "da", "van", "od", "nuo", "dari", "от", "від", "מאת", "fra", "från",
             "lähettäjä", "kimden", "发件人", "寄件者", "差出人", "보낸 사람", "từ"],
    "sent": ["sent", "gesendet", "envoyé", "enviado", "enviado el", "enviada em", "inviato", "verzonden",
             "wysłano", "wysłane", "išsiųsta", "dikirim", "terkirim", "отправлено", "надіслано", "נשלח",
             "sendt", "skickat", "lähetetty", "gönderildi", "odesláno", "发送时间", "送信日時", "보낸 날짜",
             "đã gửi"],
    "date": ["date", "datum", "fecha", "data", "дата", "תאריך", "dato", "päivämäärä", "tarih", "tanggal",
             "日期", "ngày"],
    "to": ["to", "an", "à", "a", "para", "aan", "do", "kam", "kepada", "кому", "אל", "til", "till",
           "vastaanottaja", "kime", "komu", "收件人", "宛先", "받는 사람", "đến"],
    "cc": ["cc", "kopie", "copie", "dw", "kopija", "tembusan", "копия", "העתק", "kopia", "kopio", "bilgi",
           "抄送"],
    "subject": ["subject", "betreff", "objet", "asunto", "assunto", "oggetto", "onderwerp", "temat",
                "tema", "subjek", "perihal", "тема", "נושא", "emne", "ämne", "aihe", "konu", "předmět",
                "主题", "件名", "제목", "chủ đề"],
}

# Mobile and client footers ("Sent from my iPhone"): signature, not text.
MOBILE_FOOTERS = [
    r"sent from (?:my )?[\w'’ .,-]{2,40}", r"sent with [\w'’ .-]{2,40}", r"sent via [\w'’ .-]{2,40}",
    r"get outlook for \w+", r"sent from yahoo mail.{0,30}",
    r"von meinem [\w'’ .-]{2,40} gesendet", r"gesendet von [\w'’ .-]{2,40}", r"von [\w'’ .-]{2,30} gesendet",
    r"envoyé de mon [\w'’ .-]{2,40}", r"envoyé depuis [\w'’ .-]{2,40}",
    r"enviado desde mi [\w'’ .-]{2,40}", r"enviado desde [\w'’ .-]{2,40}", r"enviado do meu [\w'’ .-]{2,40}",
    r"inviato da(?:l mio)? [\w'’ .-]{2,40}", r"verzonden (?:vanaf|met) (?:mijn )?[\w'’ .-]{2,40}",
    r"wysłane z (?:mojego )?[\w'’ .-]{2,40}", r"wysłano z (?:mojego )?[\w'’ .-]{2,40}",
    r"išsiųsta iš (?:mano )?[\w'’ .-]{2,40}", r"siųsta iš [\w'’ .-]{2,40}",
    r"dikirim dari [\w'’ .-]{2,40}", r"отправлено с(?: моего)? [\w'’ .-]{2,40}",
    r"отправлено из [\w'’ .-]{2,40}", r"נשלח מ[\w'’ .-]{2,40}", r"skickat från (?:min )?[\w'’ .-]{2,40}",
    r"sendt fra (?:min )?[\w'’ .-]{2,40}", r"lähetetty [\w'’ .-]{2,40}(?:sta|stä|lta|ltä)",
]
MOBILE_FOOTER = re.compile(
    r"^\s*(?:" + "|".join(MOBILE_FOOTERS) + r")\s*(?:\(\S+\)|<\S+>)?\s*[.!]?\s*$", re.IGNORECASE)

# A sign-off line ("Thanks,", "Best regards, Ana"): what follows it is the signature.
SIGN_OFFS = [
    # en
    r"thanks(?: again| a lot| so much| in advance)?", r"thank you(?: very much| so much)?", r"many thanks",
    r"thx", r"ty", r"cheers", r"regards", r"best regards", r"kind regards", r"warm regards",
    r"warmest regards", r"best wishes", r"best", r"all the best", r"sincerely", r"yours sincerely",
    r"yours truly", r"yours faithfully", r"respectfully", r"with thanks", r"talk soon", r"take care",
    r"br", r"rgds", r"kr",
    # de
    r"mit freundlichen grüßen", r"mit freundlichen grüssen", r"freundliche grüße", r"freundliche grüsse",
    r"viele grüße", r"viele grüsse", r"beste grüße", r"liebe grüße", r"lg", r"mfg", r"grüße", r"gruß",
    r"danke", r"vielen dank",
    # fr
    r"cordialement", r"bien cordialement", r"bien à vous", r"salutations", r"merci", r"merci beaucoup",
    r"bonne journée", r"amicalement", r"sincères salutations",
    # es / pt
    r"saludos", r"un saludo", r"saludos cordiales", r"atentamente", r"gracias", r"muchas gracias",
    r"cordialmente", r"atenciosamente", r"obrigad[oa]", r"abraços", r"abraço", r"cumprimentos",
    # it
    r"cordiali saluti", r"distinti saluti", r"saluti", r"grazie", r"grazie mille", r"un saluto",
    # nl
    r"met vriendelijke groet(?:en)?", r"vriendelijke groet(?:en)?", r"groeten", r"groet", r"bedankt",
    r"hartelijke groet(?:en)?", r"mvg",
    # sv / da / no
    r"med vänliga hälsningar", r"vänliga hälsningar", r"hälsningar", r"mvh", r"tack", r"med venlig hilsen",
    r"venlig hilsen", r"hilsen", r"med vennlig hilsen", r"vennlig hilsen", r"takk",
    # pl
    r"pozdrawiam(?: serdecznie)?", r"z poważaniem", r"pozdrowienia", r"dziękuję", r"dzięki",
    r"serdecznie pozdrawiam", r"łączę pozdrowienia",
    # lt
    r"pagarbiai", r"linkėjimai", r"geros dienos", r"ačiū", r"dėkoju", r"su pagarba", r"linkiu geros dienos",
    # id
    r"salam", r"hormat saya", r"hormat kami", r"terima kasih", r"salam hangat", r"wassalam", r"trims",
    # ru / uk
    r"с уважением", r"спасибо", r"всего доброго", r"всего наилучшего", r"благодарю", r"з повагою", r"дякую",
    # he
    r"בברכה", r"תודה", r"תודה רבה", r"בכבוד רב", r"כל טוב", r"שלך",
    # others
    r"saygılarımla", r"teşekkürler", r"s pozdravem", r"děkuji", r"ystävällisin terveisin", r"terveisin",
    r"kiitos",
]
SIGN_OFF = re.compile(
    r"^\s*(?:" + "|".join(SIGN_OFFS) + r")\s*[,.!:;]*\s*(?P<name>[-–—]?\s*[\w.'’-]+(?:\s+[\w.'’-]+){0,3})?\s*$",
    re.IGNORECASE)
SIGN_OFF_ONLY = re.compile(r"^\s*(?:" + "|".join(SIGN_OFFS) + r")\s*[,.!:;]*\s*$", re.IGNORECASE)
