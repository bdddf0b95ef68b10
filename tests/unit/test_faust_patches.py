"""Guards of lineage_faust/faust_patches: each fails when the faust/aiokafka/mode code a patch
copies or reaches into changes (docs/faust-workarounds.md says what to do then), and the
worker refuses versions it was not tested with."""

from __future__ import annotations

import hashlib
import inspect

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.client import AIOKafkaClient
from aiokafka.consumer.group_coordinator import GroupCoordinator
from aiokafka.producer import AIOKafkaProducer
from faust.stores.rocksdb import Store as RocksDBStore
from faust.streams import Stream
from faust.tables.manager import TableManager
from faust.tables.recovery import Recovery
from faust.transport.consumer import Consumer
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

from lineage_faust import faust_patches
from lineage_faust.faust_patches.recovery import (
    RECOVERY_COMPLETED_SHA256,
    TABLE_MANAGER_ON_START_SHA256,
)


def sha256_of(function: object) -> str:
    return hashlib.sha256(inspect.getsource(function).encode()).hexdigest()


def test_the_copied_recovery_method_is_faust_0_15_3s() -> None:
    # recovery.py's SeekThenResumeRecovery.on_recovery_completed is this method with one
    # ordering fix: a Faust that changes it must be compared with the copy before upgrading
    assert sha256_of(Recovery.on_recovery_completed) == RECOVERY_COMPLETED_SHA256


def test_the_table_manager_start_replaced_is_faust_0_15_3s() -> None:
    # recovery.py's SeekThenResumeTableManager.on_start is this method without its 1 s sleep
    assert sha256_of(TableManager.on_start) == TABLE_MANAGER_ON_START_SHA256
    assert "await self.sleep(1.0)" in inspect.getsource(TableManager.on_start)


@pytest.mark.parametrize(
    "owner, name",
    [
        (Stream, "_set_current_event"),  # consumer.make_current
        (Consumer, "_get_active_partitions"),  # consumer.unfetched
        (Consumer, "on_buffer_drop"),  # consumer.resume_flow
        (AIOKafkaConsumerThread, "_ensure_consumer"),  # pause_or_resume, request_rejoin
        (AIOKafkaConsumerThread, "call_thread"),
        (AIOKafkaClient, "force_metadata_update"),  # request_rejoin
        (GroupCoordinator, "request_rejoin"),
        (RocksDBStore, "_db_for_partition"),  # table_writes
        (RocksDBStore, "set_persisted_offset"),
        (AIOKafkaProducer, "create_batch"),
        (AIOKafkaProducer, "send_batch"),
        (TableManager, "_update_channels"),  # recovery.SeekThenResumeTableManager.on_start
        (Recovery, "_is_changelog_tp"),  # recovery.ExactEndRecovery.seek_uncommitted
    ],
)
def test_the_methods_the_patches_call_exist(owner: type, name: str) -> None:
    assert callable(getattr(owner, name, None)), f"{owner.__qualname__}.{name}"


@pytest.mark.parametrize(
    "owner, attribute",
    [
        (Consumer.__init__, "self._buffered_partitions"),  # consumer.flow_paused
        (Consumer, "self._paused_partitions = set()"),  # consumer.unfetched
        (Consumer.__init__, "self._read_offset"),  # consumer.read_offset
        # recovery.ExactEndRecovery.seek_uncommitted (None where nothing was committed)
        (Consumer.__init__, "self._committed_offset = defaultdict(lambda: None)"),
        (AIOKafkaConsumer.__init__, "self._client"),  # request_rejoin
        (AIOKafkaConsumer.__init__, "self._coordinator"),
        (RocksDBStore.__init__, "self._dbs"),  # consumer.rocksdb_databases
        (RocksDBStore.__init__, "self._key_index"),  # table_writes
    ],
)
def test_the_attributes_the_patches_read_are_set_where_they_were(
    owner: object, attribute: str
) -> None:
    assert attribute in inspect.getsource(owner), attribute


def test_untested_versions_are_refused_with_a_clear_message() -> None:
    assert faust_patches.check_versions() is None  # what is installed is what was tested
    message = faust_patches.version_problem({"faust-streaming": "0.16.0", "aiokafka": "0.14.0"})
    assert message is not None
    assert "faust-streaming 0.16.0" in message and "0.15.3" in message
    assert "docs/faust-workarounds.md" in message
