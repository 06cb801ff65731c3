from parsers.invoice_model import ExtractedInvoice
def extract_from_layout(pdf):
    return ExtractedInvoice(source="layout")
