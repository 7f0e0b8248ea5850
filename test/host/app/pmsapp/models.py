from django.db import models


class TaskRow(models.Model):
    """One row per Celery task the worker ran; tests look rows up by id."""

    id = models.CharField(primary_key=True, max_length=200)
    done_at = models.DateTimeField(auto_now_add=True)
    slept_seconds = models.FloatField(default=0)
