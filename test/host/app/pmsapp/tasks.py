import time

from celery import shared_task

from .models import TaskRow


@shared_task
def record(task_id, seconds=0.0):
    """Sleep `seconds` (to simulate a busy worker), then write the row the tests look for."""
    if seconds:
        time.sleep(seconds)
    TaskRow.objects.get_or_create(id=task_id, defaults={"slept_seconds": seconds})
