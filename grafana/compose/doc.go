// Package compose checks docker-compose.yml and the files it mounts without
// Docker: the compose file loads with the compose-spec loader, every file
// and build target it names exists, and the ports and addresses the
// services, tideline's settings (tideline.yaml here) and Grafana's
// provisioning use agree with each other. It holds only tests and the
// settings file the stack mounts.
package compose
