import React from 'react';
import { fireEvent, render, screen } from '@testing-library/react';
import { DataSourceSettings } from '@grafana/data';

import { ConfigEditor } from './ConfigEditor';
import { TidelineDataSourceOptions, TidelineSecureJsonData } from '../types';

type Settings = DataSourceSettings<TidelineDataSourceOptions, TidelineSecureJsonData>;

function settings(jsonData: Partial<TidelineDataSourceOptions>, secureJsonFields: Record<string, boolean> = {}) {
  return {
    id: 1,
    uid: 'tideline-uid',
    orgId: 1,
    name: 'tideline',
    type: 'tideline-audience-datasource',
    typeName: 'tideline',
    typeLogoUrl: '',
    access: 'proxy',
    url: '',
    user: '',
    database: '',
    basicAuth: false,
    basicAuthUser: '',
    isDefault: false,
    withCredentials: false,
    readOnly: false,
    jsonData,
    secureJsonFields,
  } as unknown as Settings;
}

const full: TidelineDataSourceOptions = { host: 'ch.internal', port: 9000, user: 'grafana', database: 'tideline' };

describe('ConfigEditor', () => {
  it('calls onOptionsChange when the host changes', () => {
    const onOptionsChange = jest.fn();
    const options = settings(full);
    render(<ConfigEditor options={options} onOptionsChange={onOptionsChange} />);
    expect(onOptionsChange).not.toHaveBeenCalled();

    fireEvent.change(screen.getByLabelText('Host'), { target: { value: 'clickhouse.example' } });

    expect(onOptionsChange).toHaveBeenCalledTimes(1);
    expect(onOptionsChange).toHaveBeenCalledWith({ ...options, jsonData: { ...full, host: 'clickhouse.example' } });
  });

  it('stores the defaults for a new data source', () => {
    const onOptionsChange = jest.fn();
    render(<ConfigEditor options={settings({})} onOptionsChange={onOptionsChange} />);
    expect(onOptionsChange).toHaveBeenCalledWith(
      expect.objectContaining({
        jsonData: { host: '127.0.0.1', port: 9000, user: 'grafana', database: 'tideline' },
      })
    );
  });

  it('stores only valid ports, as numbers', () => {
    const onOptionsChange = jest.fn();
    render(<ConfigEditor options={settings(full)} onOptionsChange={onOptionsChange} />);
    const port = screen.getByLabelText('Port');
    fireEvent.change(port, { target: { value: '9440' } });
    expect(onOptionsChange).toHaveBeenLastCalledWith(expect.objectContaining({ jsonData: { ...full, port: 9440 } }));
    fireEvent.change(port, { target: { value: '70000' } });
    expect(onOptionsChange).toHaveBeenCalledTimes(1);
    expect(screen.getByText('Port must be a number between 1 and 65535')).toBeInTheDocument();
  });

  it('keeps the password in secureJsonData and can reset a configured one', () => {
    const onOptionsChange = jest.fn();
    const { unmount } = render(<ConfigEditor options={settings(full)} onOptionsChange={onOptionsChange} />);
    fireEvent.change(screen.getByLabelText('Password'), { target: { value: 's3cret' } });
    expect(onOptionsChange).toHaveBeenLastCalledWith(
      expect.objectContaining({ jsonData: full, secureJsonData: { password: 's3cret' } })
    );
    unmount();

    onOptionsChange.mockClear();
    render(<ConfigEditor options={settings(full, { password: true })} onOptionsChange={onOptionsChange} />);
    fireEvent.click(screen.getByRole('button', { name: 'Reset' }));
    expect(onOptionsChange).toHaveBeenLastCalledWith(
      expect.objectContaining({ secureJsonFields: { password: false }, secureJsonData: { password: '' } })
    );
  });

  it('toggles TLS skip verify', () => {
    const onOptionsChange = jest.fn();
    render(<ConfigEditor options={settings(full)} onOptionsChange={onOptionsChange} />);
    fireEvent.click(screen.getByLabelText('Skip TLS verify'));
    expect(onOptionsChange).toHaveBeenLastCalledWith(
      expect.objectContaining({ jsonData: { ...full, tlsSkipVerify: true } })
    );
  });

  it('keeps TLS certificates in secureJsonData and the server name in jsonData', () => {
    const onOptionsChange = jest.fn();
    const { unmount } = render(<ConfigEditor options={settings(full)} onOptionsChange={onOptionsChange} />);
    fireEvent.change(screen.getByLabelText('Client key'), { target: { value: 'KEY PEM' } });
    expect(onOptionsChange).toHaveBeenLastCalledWith(
      expect.objectContaining({ jsonData: full, secureJsonData: { tlsClientKey: 'KEY PEM' } })
    );
    fireEvent.change(screen.getByLabelText('Server name'), { target: { value: 'ch.example' } });
    expect(onOptionsChange).toHaveBeenLastCalledWith(
      expect.objectContaining({ jsonData: { ...full, tlsServerName: 'ch.example' } })
    );
    fireEvent.click(screen.getByLabelText('Secure'));
    expect(onOptionsChange).toHaveBeenLastCalledWith(expect.objectContaining({ jsonData: { ...full, secure: true } }));
    unmount();

    onOptionsChange.mockClear();
    render(<ConfigEditor options={settings(full, { tlsCACert: true })} onOptionsChange={onOptionsChange} />);
    fireEvent.click(screen.getByRole('button', { name: 'Reset' }));
    expect(onOptionsChange).toHaveBeenLastCalledWith(
      expect.objectContaining({ secureJsonFields: { tlsCACert: false }, secureJsonData: { tlsCACert: '' } })
    );
  });
});
