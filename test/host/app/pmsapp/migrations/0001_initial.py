from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True
    dependencies = []

    operations = [
        migrations.CreateModel(
            name="TaskRow",
            fields=[
                ("id", models.CharField(max_length=200, primary_key=True, serialize=False)),
                ("done_at", models.DateTimeField(auto_now_add=True)),
                ("slept_seconds", models.FloatField(default=0)),
            ],
        ),
    ]
