import React from 'react';
import { fireEvent, render, screen } from '@testing-library/react';

import { AudiencePreview, PreviewSource } from './AudiencePreview';
import { AudiencePreview as Preview } from '../types';

const answer: Preview = {
  audience_id: 'gold_now',
  name: 'Gold plan',
  version: '63930fdc677a6892',
  applied: false,
  changed: false,
  direction: 'either',
  lanes: ['server'],
  as_of_ms: Date.UTC(2026, 11, 5, 5, 42, 20),
  complete_ms: Date.UTC(2026, 11, 5, 5, 42, 20),
  evaluated: 8,
  size: 8,
  entered: 8,
  exited: 0,
  by_lane: { server: 8 },
  changes: [],
  sample: [
    {
      customer_id: 'u0',
      kind: 'entered',
      episode: 1,
      event_time_ms: Date.UTC(2026, 11, 5, 5, 41, 20),
      ingest_time_ms: 0,
      message_id: 'id-0',
      lane: 'server',
      attributes: { plan: 'gold' },
      features: {},
      event: 'identify',
    },
  ],
  campaigns: [
    {
      campaign_id: 'welcome',
      trigger: 'audience_entered',
      qualifications: 8,
      sends: 5,
      late: 0,
      deferred: 0,
      skipped: { stale: 3 },
      waiting: 0,
      already_decided: 0,
    },
  ],
  sends: 5,
};

describe('AudiencePreview', () => {
  it('posts the definition and shows size, lanes, campaign impact and the sample', async () => {
    const source: PreviewSource = { previewAudience: jest.fn().mockResolvedValue(answer) };
    render(<AudiencePreview datasource={source} />);
    fireEvent.change(screen.getByLabelText('Audience definition'), { target: { value: 'id: gold_now\n' } });
    fireEvent.click(screen.getByText('Preview'));

    const result = await screen.findByTestId('audience-preview-result');
    expect(source.previewAudience).toHaveBeenCalledWith('id: gold_now\n', 10);
    expect(result.textContent).toContain('8 members after apply: 8 enter, 0 exit');
    expect(result.textContent).toContain('Entries by lane: server 8');
    expect(result.textContent).toContain('Apply would send 5 campaign messages at once');
    expect(result.textContent).toContain('3 stale');
    expect(result.textContent).toContain('plan=gold');
    expect(result.textContent).toContain('identify (id-0)');
  });

  it('lists the problems of a refused definition', async () => {
    const refused = {
      status: 400,
      data: { message: 'the audience definition has problems', problems: ['definition:4:13: at_least: want a number'] },
    };
    const source: PreviewSource = { previewAudience: jest.fn().mockRejectedValue(refused) };
    render(<AudiencePreview datasource={source} />);
    fireEvent.change(screen.getByLabelText('Audience definition'), { target: { value: 'id: bad\n' } });
    fireEvent.click(screen.getByText('Preview'));

    expect(await screen.findByText('the audience definition has problems')).toBeTruthy();
    expect(screen.getByText('definition:4:13: at_least: want a number')).toBeTruthy();
    expect(screen.queryByTestId('audience-preview-result')).toBeNull();
  });
});
