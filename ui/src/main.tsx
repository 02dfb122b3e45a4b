import { render } from 'preact';
import { App } from './app';
import { takeTokenFromLink } from './session';
import './styles.css';

// Before anything renders: a portal link's token leaves the address bar at once.
const linkToken = takeTokenFromLink();
render(<App linkToken={linkToken} />, document.getElementById('app') as HTMLElement);
