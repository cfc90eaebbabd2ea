import React from 'react';
import { act, render, screen, waitFor } from '@testing-library/react';

import { QueryEditor } from './QueryEditor';
import { DataSource } from '../datasource';
import { QueryType, TidelineQuery } from '../types';

function fakeDataSource() {
  return {
    getAudiences: jest.fn().mockResolvedValue([
      { id: 'aud-1', name: 'Cart abandoners' },
      { id: 'aud-2', name: 'Lapsed buyers' },
    ]),
    getCampaigns: jest.fn().mockResolvedValue([{ id: 'camp-1', name: 'Spring sale' }]),
    getVariables: jest.fn().mockReturnValue(['$audience']),
  };
}

function renderEditor(query: Partial<TidelineQuery>, ds = fakeDataSource()) {
  const onChange = jest.fn();
  const onRunQuery = jest.fn();
  render(
    <QueryEditor
      datasource={ds as unknown as DataSource}
      query={{ refId: 'A', ...query } as TidelineQuery}
      onChange={onChange}
      onRunQuery={onRunQuery}
    />
  );
  return { ds, onChange, onRunQuery };
}

describe('QueryEditor', () => {
  it('renders the query type picker with the current type', () => {
    renderEditor({ queryType: 'pipeline_lag' });
    const picker = screen.getByLabelText('Query type');
    expect(picker).toBeInTheDocument();
    expect(picker).toHaveValue('Pipeline lag');
  });

  it.each<QueryType>(['audience_size', 'transitions', 'live_qualifications', 'audience_completeness'])(
    'shows the audience picker for %s, loaded from the audiences resource',
    async (queryType) => {
      const { ds } = renderEditor({ queryType, audiences: ['aud-2'] });
      expect(screen.getByLabelText('Audiences')).toBeInTheDocument();
      expect(screen.queryByLabelText('Campaigns')).not.toBeInTheDocument();
      expect(screen.queryByLabelText('Lanes')).not.toBeInTheDocument();
      expect(ds.getAudiences).toHaveBeenCalledTimes(1);
      // once loaded, the selected id is shown by its name
      expect(await screen.findByText('Lapsed buyers')).toBeInTheDocument();
    }
  );

  it.each<QueryType>(['qualification_latency', 'campaign_outcomes', 'pipeline_lag', 'backfill_runs'])(
    'hides the audience picker for %s',
    async (queryType) => {
      const { ds } = renderEditor({ queryType });
      expect(screen.getByLabelText('Query type')).toBeInTheDocument();
      expect(screen.queryByLabelText('Audiences')).not.toBeInTheDocument();
      expect(ds.getAudiences).not.toHaveBeenCalled();
      if (queryType === 'campaign_outcomes') {
        await waitFor(() => expect(ds.getCampaigns).toHaveBeenCalledTimes(1));
      }
    }
  );

  it('shows the campaign picker for campaign_outcomes', async () => {
    const { ds } = renderEditor({ queryType: 'campaign_outcomes', campaigns: ['camp-1'] });
    expect(screen.getByLabelText('Campaigns')).toBeInTheDocument();
    expect(ds.getCampaigns).toHaveBeenCalledTimes(1);
    expect(await screen.findByText('Spring sale')).toBeInTheDocument();
  });

  it.each<QueryType>(['qualification_latency', 'pipeline_lag'])('shows the lane picker for %s', (queryType) => {
    renderEditor({ queryType, lanes: ['web'] });
    expect(screen.getByLabelText('Lanes')).toBeInTheDocument();
    expect(screen.getByText('web')).toBeInTheDocument();
  });

  it("shows the metric picker and the metric's own filter for alert_metric", async () => {
    renderEditor({ queryType: 'alert_metric', metric: 'delivery_failures' });
    expect(screen.getByLabelText('Metric')).toHaveValue('Delivery failures');
    expect(screen.getByLabelText('Campaigns')).toBeInTheDocument();
    expect(screen.queryByLabelText('Lanes')).not.toBeInTheDocument();
    expect(screen.queryByLabelText('Audiences')).not.toBeInTheDocument();
    await act(() => Promise.resolve()); // let the campaigns load before unmounting
  });

  it('offers the lane filter for the default metric of alert_metric', () => {
    renderEditor({ queryType: 'alert_metric' });
    expect(screen.getByLabelText('Metric')).toHaveValue('Watermark age');
    expect(screen.getByLabelText('Lanes')).toBeInTheDocument();
    expect(screen.queryByLabelText('Campaigns')).not.toBeInTheDocument();
  });

  it('stores the default type for a query without one', async () => {
    const { onChange, ds } = renderEditor({});
    expect(onChange).toHaveBeenCalledWith({ refId: 'A', queryType: 'audience_size' });
    expect(screen.getByLabelText('Audiences')).toBeInTheDocument();
    expect(ds.getAudiences).toHaveBeenCalledTimes(1);
    await act(() => Promise.resolve()); // let the audiences load before unmounting
  });

  it('shows an error when audiences cannot be loaded', async () => {
    const ds = fakeDataSource();
    ds.getAudiences.mockRejectedValue({ data: { message: 'connection refused' } });
    renderEditor({ queryType: 'audience_size' }, ds);
    expect(await screen.findByText(/Could not load audiences: connection refused/)).toBeInTheDocument();
  });
});
