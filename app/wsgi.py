"""WSGI entry point for IIS (wfastcgi: WSGI_HANDLER=app.wsgi.application), Azure App Service (gunicorn
app.wsgi:application) and any WSGI server. Settings come from $DICOMCLOUD_CONFIG or ./web.config."""
from app import create_app

application = create_app()
