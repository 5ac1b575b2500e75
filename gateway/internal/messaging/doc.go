// Package messaging is the gateway's side of channel messages: the channel cache
// (Channels: which channels exist, their type and history age, agents' roles in private
// channels, fed by the channel events and filled on a miss by the channel service) and
// the publisher (Publisher: every publish check, the message quota hook, and the one
// JetStream publish that stores a message). REST publishing and the WebSocket sessions
// both use them, so the rules are written once.
package messaging
