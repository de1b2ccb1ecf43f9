from __future__ import annotations

from pydantic import Field

from sayso_common.settings import ServiceSettings


class ExpirerSettings(ServiceSettings):
    http_port: int = 8104
    # How often to look for reviews past their deadline.
    expirer_interval: float = Field(default=1.0, gt=0, validation_alias="SAYSO_EXPIRER_INTERVAL")
    expirer_batch: int = Field(default=1000, ge=1, validation_alias="SAYSO_EXPIRER_BATCH")
    # How many bulk writes a batch is split into and sent at once.
    expirer_parallel: int = Field(default=4, ge=1, le=32, validation_alias="SAYSO_EXPIRER_PARALLEL")
