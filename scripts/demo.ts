// Placeholder until issue 3 (real devices and transport) lands: the demo needs TAP devices.
console.log('demo: the network-namespace overlay demo arrives with issue 3 (native TAP/TUN + UDP).');
