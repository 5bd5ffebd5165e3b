package itchflow.connectors;

import java.time.Duration;

import org.apache.flink.api.common.eventtime.TimestampAssigner;
import org.apache.flink.api.common.eventtime.TimestampAssignerSupplier;
import org.apache.flink.api.common.eventtime.Watermark;
import org.apache.flink.api.common.eventtime.WatermarkGenerator;
import org.apache.flink.api.common.eventtime.WatermarkGeneratorSupplier;
import org.apache.flink.api.common.eventtime.WatermarkOutput;
import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.types.Row;

/**
 * Bounded out-of-orderness watermarks emitted after every record instead of periodically: the
 * watermark follows each record exactly, whatever the timing of the source. For sources whose
 * records each carry many events (our bundles), and for tests that need lateness to be decided by
 * the data alone. Timestamps from {@link EventTimeAssigner}.
 */
public class PerRecordWatermarks implements WatermarkStrategy<Row> {
    private static final long serialVersionUID = 1L;
    private final long outOfOrdernessMs;

    public PerRecordWatermarks(long outOfOrdernessMs) {
        this.outOfOrdernessMs = outOfOrdernessMs;
    }

    public static PerRecordWatermarks of(Duration outOfOrderness) {
        return new PerRecordWatermarks(outOfOrderness.toMillis());
    }

    @Override
    public WatermarkGenerator<Row> createWatermarkGenerator(WatermarkGeneratorSupplier.Context context) {
        return new Generator(outOfOrdernessMs);
    }

    @Override
    public TimestampAssigner<Row> createTimestampAssigner(TimestampAssignerSupplier.Context context) {
        return new EventTimeAssigner();
    }

    private static final class Generator implements WatermarkGenerator<Row> {
        private final long outOfOrdernessMs;
        private long emitted = Long.MIN_VALUE;

        Generator(long outOfOrdernessMs) {
            this.outOfOrdernessMs = outOfOrdernessMs;
        }

        @Override
        public void onEvent(Row event, long eventTimestamp, WatermarkOutput output) {
            if (eventTimestamp == Long.MIN_VALUE) {
                return;
            }
            long watermark = eventTimestamp - outOfOrdernessMs - 1;
            if (watermark > emitted) {
                emitted = watermark;
                output.emitWatermark(new Watermark(watermark));
            }
        }

        @Override
        public void onPeriodicEmit(WatermarkOutput output) {}
    }
}
