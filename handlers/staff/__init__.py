"""Staff, in the staff group: replies to customers, taking tickets, marking remedies done."""

from aiogram import Router

from handlers.filters import HasRole
from handlers.staff import card, relay

router = Router(name=__name__)
router.message.filter(HasRole("staff", "manager"))
router.callback_query.filter(HasRole("staff", "manager"))
router.include_routers(card.router, relay.router)
