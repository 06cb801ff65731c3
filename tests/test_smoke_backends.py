from flows.deals import Stage
from tests.factories import deal_at, seed, stage_of


def test_a_deal_walks_the_whole_loop(services):
    customer = seed(services.ledger)
    deal = deal_at(services.ledger, customer, Stage.BILLING_ACTIVE)
    assert stage_of(services.ledger, deal) is Stage.BILLING_ACTIVE
