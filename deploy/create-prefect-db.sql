CREATE DATABASE prefect OWNER kehoach;
