package sshkey

// PublicKeyMessages are every answer ParsePublicKey gives, for tests that prove it never
// echoes its input.
var PublicKeyMessages = []string{
	msgPrivateKey, msgRequired, msgTooLong, msgOneLine, msgComment, msgNotAKey,
	msgRSAShort, msgRSALong, msgUnsupported,
}
