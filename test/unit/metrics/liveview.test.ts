import { describe, expect, it } from 'vitest';
import { ViewerMeter, liveViewFrames, liveViewInputLatency, pruneLiveViewSessions } from '../../../src/metrics/liveview.js';
import { MetricsRegistry } from '../../../src/metrics/prometheus.js';

const render = () => {
  const r = new MetricsRegistry();
  r.add(liveViewFrames);
  r.add(liveViewInputLatency);
  return r.render();
};

describe('ViewerMeter', () => {
  it('times input to the first frame taken after the damage that followed it', () => {
    const m = new ViewerMeter('vnc', 'probe-a');
    m.frame(100, 0, 5); // no input yet: counted, no latency
    m.input(10);
    m.frame(100, 8, 12); // taken before the input
    m.damage(20);
    m.frame(100, 15, 25); // taken before the damage
    m.input(22); // a probe is already running: ignored
    m.frame(100, 20, 60); // taken at the damage: 50 ms after the input
    m.frame(100, 70, 80); // no probe
    const text = render();
    expect(text).toContain('handoff_liveview_frames_total{transport="vnc",session="probe-a"} 5');
    expect(text).toContain('handoff_liveview_input_to_frame_seconds_count{transport="vnc",session="probe-a"} 1');
    expect(text).toContain('handoff_liveview_input_to_frame_seconds_sum{transport="vnc",session="probe-a"} 0.05');
  });

  it('gives up on an input nothing followed, and drops the series of sessions that are gone', () => {
    const m = new ViewerMeter('screencast', 'probe-b');
    m.input(0);
    m.damage(6000);
    m.frame(10, 6000, 6001);
    expect(render()).not.toContain('input_to_frame_seconds_count{transport="screencast",session="probe-b"}');
    pruneLiveViewSessions(new Set(['probe-a']));
    expect(render()).not.toContain('probe-b');
    expect(render()).toContain('probe-a');
  });
});
