"""What the bot waits for during a customer's intake.

```mermaid
stateDiagram-v2
    [*] --> choosing_category: first message (what it already answers is skipped)
    choosing_category --> entering_order_number
    entering_order_number --> describing_problem
    describing_problem --> sending_photos
    sending_photos --> sharing_contact: done / no photos
    sharing_contact --> confirming
    confirming --> choosing_field: change
    choosing_field --> confirming: back
    choosing_field --> choosing_category: (any field) ... --> confirming
    confirming --> [*]: submit (ticket goes to the staff group) / cancel
```
"""

from aiogram.fsm.state import State, StatesGroup

from bot.domain.intake import Step


class FileComplaint(StatesGroup):
    choosing_category = State()
    entering_order_number = State()
    describing_problem = State()
    sending_photos = State()
    sharing_contact = State()
    confirming = State()
    choosing_field = State()


STATE_OF_STEP = {
    Step.CATEGORY: FileComplaint.choosing_category,
    Step.ORDER: FileComplaint.entering_order_number,
    Step.STORY: FileComplaint.describing_problem,
    Step.PHOTOS: FileComplaint.sending_photos,
    Step.CONTACT: FileComplaint.sharing_contact,
    Step.CONFIRM: FileComplaint.confirming,
}
